package sidecar

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/redisstore"
	"github.com/lockproxy/lockproxy/resp"
)

// DefaultConfig is what an empty environment gives, and it passes
// Validate: the tags parse, and agree with each other.
func TestDefaultConfig(t *testing.T) {
	want, err := LoadConfig(nil)
	if err != nil {
		t.Fatalf("LoadConfig with no variable set: %v", err)
	}
	if got := DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("DefaultConfig() = %+v, want %+v", got, want)
	}
}

// The env tags are where the sidecar's defaults are written; lockcore
// writes its own for callers of the library, which cannot import this
// package. Each field that lockcore gives a default must get the same from
// the tags, so that the two cannot drift apart. (The fields lockcore
// leaves unbounded, such as MaxLocksPerSession, are the sidecar's own.)
func TestDefaultsAgreeWithLockcore(t *testing.T) {
	ours := reflect.ValueOf(DefaultConfig().lockcoreConfig())
	theirs := reflect.ValueOf(lockcore.DefaultConfig())
	for i := range theirs.NumField() {
		if theirs.Field(i).IsZero() {
			continue
		}
		name := theirs.Type().Field(i).Name
		if o, th := ours.Field(i).Interface(), theirs.Field(i).Interface(); !reflect.DeepEqual(o, th) {
			t.Errorf("lockcore.Config.%s: lockcore.DefaultConfig has %+v, the sidecar's env tags give %+v", name, th, o)
		}
	}
}

// resp.DefaultLimits, which a zero resp.Limits takes, are the sidecar's
// defaults too.
func TestDefaultsAgreeWithResp(t *testing.T) {
	if ours := DefaultConfig().respLimits(); ours != resp.DefaultLimits {
		t.Errorf("resp.DefaultLimits = %+v, the sidecar's env tags give %+v", resp.DefaultLimits, ours)
	}
}

// load is LoadConfig over LOCKPROXY_ variables given without their prefix.
func load(vars map[string]string) (Config, error) {
	var environ []string
	for k, v := range vars {
		environ = append(environ, EnvPrefix+k+"="+v)
	}
	return LoadConfig(environ)
}

// Each form of LOCKPROXY_UPSTREAM is read in the mode it asks for, and a
// Sentinel URL gives the Sentinels' addresses, the master set, the data
// nodes' credentials (from the URL) and the Sentinels' (from their own
// variables), as the client will get them.
func TestUpstreamForms(t *testing.T) {
	type sentinel struct {
		addrs                      string
		master                     string
		user, pass                 string
		sentinelUser, sentinelPass string
		tls                        bool
	}
	for _, tc := range []struct {
		name     string
		vars     map[string]string
		mode     string
		sentinel sentinel // when mode is sentinel
	}{
		{"embedded", map[string]string{}, "", sentinel{}},
		{"single", map[string]string{"UPSTREAM": "redis://locker:datapw@r:6379/0?pool_size=5"}, modeSingle, sentinel{}},
		{"single, said", map[string]string{"UPSTREAM": "rediss://r:6379", "UPSTREAM_MODE": "single", "REPLICA_ACKS": "1"}, modeSingle, sentinel{}},
		{"auto picks cluster", map[string]string{"UPSTREAM": "redis://n1:7000?addr=n2:7001&addr=n3:7002"}, modeCluster, sentinel{}},
		{"cluster, said", map[string]string{"UPSTREAM": "rediss://locker:datapw@n1:7000/0", "UPSTREAM_MODE": "Cluster", "REPLICA_ACKS": "1"}, modeCluster, sentinel{}},
		{
			"auto picks sentinel",
			map[string]string{"UPSTREAM": "redis://s1:26379?master_name=m&addr=s2:26379"},
			modeSentinel, sentinel{addrs: "s1:26379 s2:26379", master: "m"},
		},
		{
			"data password in the userinfo, Sentinels' apart",
			map[string]string{"UPSTREAM": "redis://:datapw@s1:26379?master_name=mymaster&addr=s2:26379&addr=s3:26379",
				"SENTINEL_PASSWORD": "sentpw", "REPLICA_ACKS": "2"},
			modeSentinel, sentinel{addrs: "s1:26379 s2:26379 s3:26379", master: "mymaster", pass: "datapw", sentinelPass: "sentpw"},
		},
		{
			"ACL users on both",
			map[string]string{"UPSTREAM": "rediss://locker:datapw@s1:26379/0?master_name=m", "UPSTREAM_MODE": "sentinel",
				"SENTINEL_USERNAME": "watcher", "SENTINEL_PASSWORD": "sentpw"},
			modeSentinel, sentinel{addrs: "s1:26379", master: "m", user: "locker", pass: "datapw",
				sentinelUser: "watcher", sentinelPass: "sentpw", tls: true},
		},
		{
			"data credentials in the query",
			map[string]string{"UPSTREAM": "redis://s1:26379?master_name=m&username=locker&password=datapw", "UPSTREAM_MODE": "Sentinel"},
			modeSentinel, sentinel{addrs: "s1:26379", master: "m", user: "locker", pass: "datapw"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := load(tc.vars)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.upstreamMode(); got != tc.mode {
				t.Fatalf("mode %q, want %q", got, tc.mode)
			}
			if tc.mode != "" {
				rdb, mode, err := upstreamClient(cfg, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				if mode != tc.mode {
					t.Errorf("the client's mode is %q, want %q", mode, tc.mode)
				}
				rdb.Close()
			}
			if tc.mode != modeSentinel {
				return
			}
			opt, err := redisstore.ParseFailoverURL(cfg.Upstream)
			if err != nil {
				t.Fatal(err)
			}
			cfg.sentinelAuth(opt)
			got := sentinel{addrs: strings.Join(opt.SentinelAddrs, " "), master: opt.MasterName,
				user: opt.Username, pass: opt.Password, sentinelUser: opt.SentinelUsername, sentinelPass: opt.SentinelPassword,
				tls: opt.TLSConfig != nil}
			if got != tc.sentinel {
				t.Errorf("got %+v, want %+v", got, tc.sentinel)
			}
		})
	}
}

// Each refused upstream setting is refused by LoadConfig, before anything
// starts, in an error that names the variable at fault.
func TestUpstreamErrorsNameTheVariable(t *testing.T) {
	const sentinelURL = "redis://s1:26379?master_name=m&addr=s2:26379"
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"UPSTREAM": "http://r:6379"}, "LOCKPROXY_UPSTREAM: must be a redis:// or rediss:// URL"},
		{map[string]string{"UPSTREAM": "redis://r:6379?pool=5"}, "LOCKPROXY_UPSTREAM: redis: unexpected option: pool"},
		{map[string]string{"UPSTREAM": "redis://r:6379?addr=r2:6379", "UPSTREAM_MODE": "single"}, "LOCKPROXY_UPSTREAM: addr= lists more servers"},
		{map[string]string{"UPSTREAM": sentinelURL, "UPSTREAM_MODE": "single"}, "LOCKPROXY_UPSTREAM: master_name= names a Sentinel master set"},
		{map[string]string{"UPSTREAM": "redis://s1:26379?addr=s2:26379", "UPSTREAM_MODE": "sentinel"},
			"LOCKPROXY_UPSTREAM: LOCKPROXY_UPSTREAM_MODE is sentinel, but the URL has no master_name="},
		{map[string]string{"UPSTREAM": "redis://:datapw@s1:26379?master_name=m&password=other"},
			"LOCKPROXY_UPSTREAM: redisstore: the data nodes' credentials are given twice"},
		{map[string]string{"UPSTREAM": "redis://s1?master_name=m"}, "LOCKPROXY_UPSTREAM: redisstore: a Sentinel URL's host needs its port"},
		{map[string]string{"UPSTREAM": sentinelURL + "&replica_only=true"}, "LOCKPROXY_UPSTREAM: redisstore: replica_only= is not supported"},
		{map[string]string{"UPSTREAM": sentinelURL + "&sentinel_password=x"}, "LOCKPROXY_UPSTREAM: redis: unexpected option: sentinel_password"},
		{map[string]string{"UPSTREAM_MODE": "cluster"}, "LOCKPROXY_UPSTREAM_MODE: cluster needs a LOCKPROXY_UPSTREAM"},
		{map[string]string{"UPSTREAM": "redis://n1:7000/2?addr=n2:7001"}, "LOCKPROXY_UPSTREAM: redisstore: a Cluster has only database 0, not 2"},
		{map[string]string{"UPSTREAM": "redis://n1:7000?addr=n2:7001&read_only=true"}, "LOCKPROXY_UPSTREAM: redisstore: read_only= is not supported"},
		{map[string]string{"UPSTREAM": "redis://n1:7000?addr=n2:7001&master_name=m", "UPSTREAM_MODE": "cluster"}, "LOCKPROXY_UPSTREAM: master_name= names a Sentinel master set, but LOCKPROXY_UPSTREAM_MODE is cluster"},
		{map[string]string{"UPSTREAM": "redis://n1:7000?addr=n2:7001&pool=5"}, "LOCKPROXY_UPSTREAM: redis: unexpected option: pool"},
		{map[string]string{"UPSTREAM": "redis://r:6379", "UPSTREAM_MODE": "ring"}, `LOCKPROXY_UPSTREAM_MODE: "ring" is not auto, single, sentinel or cluster`},
		{map[string]string{"UPSTREAM_MODE": "sentinel"}, "LOCKPROXY_UPSTREAM_MODE: sentinel needs a LOCKPROXY_UPSTREAM"},
		{map[string]string{"UPSTREAM": "redis://:pw@r:6379", "SENTINEL_PASSWORD": "sentpw"},
			"LOCKPROXY_SENTINEL_PASSWORD: is for the Sentinels of a Sentinel upstream (master_name= in LOCKPROXY_UPSTREAM), but LOCKPROXY_UPSTREAM is one Redis"},
		{map[string]string{"SENTINEL_PASSWORD": "sentpw"}, "LOCKPROXY_SENTINEL_PASSWORD: is for the Sentinels of a Sentinel upstream (master_name= in LOCKPROXY_UPSTREAM), but there is no LOCKPROXY_UPSTREAM"},
		{map[string]string{"UPSTREAM": "redis://r:6379", "SENTINEL_USERNAME": "watcher", "SENTINEL_PASSWORD": "sentpw"}, "LOCKPROXY_SENTINEL_USERNAME: is for the Sentinels"},
		{map[string]string{"UPSTREAM": sentinelURL, "SENTINEL_USERNAME": "watcher"}, "LOCKPROXY_SENTINEL_USERNAME: needs LOCKPROXY_SENTINEL_PASSWORD"},
		{map[string]string{"UPSTREAM": sentinelURL, "UPSTREAM_TLS_CA": "/ca.pem"}, "LOCKPROXY_UPSTREAM_TLS_CA: upstream TLS settings need a rediss://"},
		{map[string]string{"REPLICA_ACKS": "1"}, "LOCKPROXY_REPLICA_ACKS: the embedded store has no replicas"},
		{map[string]string{"UPSTREAM_BATCH": "0"}, "LOCKPROXY_UPSTREAM_BATCH: 0 must be between 1 and 4096"},
		{map[string]string{"UPSTREAM_BATCH": "5000"}, "LOCKPROXY_UPSTREAM_BATCH: 5000 must be between 1 and 4096"},
		{map[string]string{"UPSTREAM": sentinelURL, "REPLICA_ACKS": "17"}, "LOCKPROXY_REPLICA_ACKS: 17 must be between 0 and 16"},
		{map[string]string{"UPSTREAM": sentinelURL, "REPLICA_ACKS": "-1"}, "LOCKPROXY_REPLICA_ACKS: -1 must be between 0 and 16"},
		{map[string]string{"UPSTREAM": sentinelURL, "REPLICA_ACKS": "two"}, "LOCKPROXY_REPLICA_ACKS: "},
	} {
		_, err := load(tc.vars)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one with %q", tc.vars, err, tc.want)
		}
	}
}

// The start-up log masks every password: LOCKPROXY_PASSWORD, the
// Sentinels', and the data nodes' in the URL, in its userinfo or its query.
func TestLogAttrsMaskSecrets(t *testing.T) {
	for _, upstream := range []string{"redis://locker:datapw@s1:26379?master_name=m", "redis://s1:26379?master_name=m&password=datapw"} {
		cfg := DefaultConfig()
		cfg.Upstream, cfg.SentinelPassword, cfg.Password = upstream, "sentpw", "clientpw"
		logged := fmt.Sprint(cfg.logAttrs())
		for _, secret := range []string{"datapw", "sentpw", "clientpw"} {
			if strings.Contains(logged, secret) {
				t.Errorf("%s: the log shows %q: %s", upstream, secret, logged)
			}
		}
		if !strings.Contains(logged, "master_name=m") {
			t.Errorf("%s: the log lost the rest of the URL: %s", upstream, logged)
		}
	}
}
