package redisstore_test

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/lockproxy/lockproxy/lockcore/redisstore"
)

// Each form of the failover URL gives the Sentinels, the master set and the
// data nodes' credentials; the userinfo means the data nodes', as in a
// single-Redis URL, and the Sentinels' own are never read from the URL.
func TestParseFailoverURL(t *testing.T) {
	// fields are the options beside the Sentinels' addresses.
	type fields struct {
		master                     string
		user, pass                 string
		sentinelUser, sentinelPass string
		db, poolSize               int
		tls                        bool
	}
	for _, tc := range []struct {
		url   string
		addrs []string
		want  fields
	}{
		{"redis://s1:26379?master_name=m", []string{"s1:26379"}, fields{master: "m"}},
		{"redis://s1:26379?master_name=mymaster&addr=s2:26379&addr=10.0.0.3:26380",
			[]string{"s1:26379", "s2:26379", "10.0.0.3:26380"}, fields{master: "mymaster"}},
		{"redis://:datapw@s1:26379?master_name=m&addr=s2:26379",
			[]string{"s1:26379", "s2:26379"}, fields{master: "m", pass: "datapw"}},
		{"redis://locker:datapw@s1:26379/2?master_name=m",
			[]string{"s1:26379"}, fields{master: "m", user: "locker", pass: "datapw", db: 2}},
		{"redis://s1:26379?master_name=m&username=locker&password=datapw&pool_size=7",
			[]string{"s1:26379"}, fields{master: "m", user: "locker", pass: "datapw", poolSize: 7}},
		{"redis://s1:26379?master_name=m&password=datapw",
			[]string{"s1:26379"}, fields{master: "m", pass: "datapw"}},
		{"rediss://:datapw@s1:26379?master_name=m&addr=s2:26379",
			[]string{"s1:26379", "s2:26379"}, fields{master: "m", pass: "datapw", tls: true}},
		{"redis://[::1]:26379?master_name=m&addr=[::2]:26379",
			[]string{"[::1]:26379", "[::2]:26379"}, fields{master: "m"}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			opt, err := redisstore.ParseFailoverURL(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(opt.SentinelAddrs, tc.addrs) {
				t.Errorf("SentinelAddrs %q, want %q", opt.SentinelAddrs, tc.addrs)
			}
			got := fields{master: opt.MasterName, user: opt.Username, pass: opt.Password,
				sentinelUser: opt.SentinelUsername, sentinelPass: opt.SentinelPassword,
				db: opt.DB, poolSize: opt.PoolSize, tls: opt.TLSConfig != nil}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if opt.TLSConfig != nil && (opt.TLSConfig.ServerName != "" || opt.TLSConfig.MinVersion != tls.VersionTLS12) {
				// One TLSConfig serves every Sentinel and data node: a fixed
				// name would check them all against the first Sentinel's.
				t.Errorf("TLSConfig ServerName %q (want empty: each dialed host), MinVersion %x", opt.TLSConfig.ServerName, opt.TLSConfig.MinVersion)
			}
		})
	}
}

func TestParseFailoverURLRefuses(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"redis://:datapw@s1:26379?master_name=m&password=other", "given twice"},
		{"redis://locker@s1:26379?master_name=m&password=other", "given twice"},
		{"redis://:datapw@s1:26379?master_name=m&username=locker", "given twice"},
		{"redis://s1:26379?addr=s2:26379", "needs master_name="},
		{"redis://s1:26379?master_name=", "needs master_name="},
		{"redis://s1?master_name=m", "needs its port"},
		{"redis://s1:26379?master_name=m&replica_only=true", "replica_only= is not supported"},
		{"redis://s1:26379?master_name=m&route_randomly=true", "route_randomly= is not supported"},
		{"redis://s1:26379?master_name=m&route_by_latency=true", "route_by_latency= is not supported"},
		{"redis://s1:26379?master_name=m&addr=s2", "unable to parse addr param"},
		{"redis://s1:26379?master_name=m&sentinel_password=x", "unexpected option: sentinel_password"},
		{"http://s1:26379?master_name=m", "invalid URL scheme"},
	} {
		if _, err := redisstore.ParseFailoverURL(tc.url); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one with %q", tc.url, err, tc.want)
		}
	}
}

// Both clients get the settings the Store depends on, whatever a tune
// did; the failover client keeps the URL's data credentials for the data
// nodes and a tune's Sentinel credentials for the Sentinels.
func TestClientSettings(t *testing.T) {
	single, err := redisstore.NewClient("redis://:datapw@r:6379/0", func(o *redis.Options) {
		o.MaxRetries, o.ContextTimeoutEnabled = 5, false
	})
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	var sentinelOpt *redis.FailoverOptions
	failover, err := redisstore.NewFailoverClient("redis://:datapw@s1:26379?master_name=m&addr=s2:26379", func(o *redis.FailoverOptions) {
		o.MaxRetries, o.ContextTimeoutEnabled = 5, false
		o.SentinelPassword = "sentinelpw"
		sentinelOpt = o
	})
	if err != nil {
		t.Fatal(err)
	}
	defer failover.Close()
	for name, rdb := range map[string]redis.UniversalClient{"NewClient": single, "NewFailoverClient": failover} {
		c, ok := rdb.(*redis.Client)
		if !ok {
			t.Fatalf("%s returned a %T, want a *redis.Client", name, rdb)
		}
		o := c.Options()
		// -1 in the options is no retry, which go-redis stores as 0.
		if o.MaxRetries != 0 || !o.ContextTimeoutEnabled || o.MaintNotificationsConfig == nil ||
			o.MaintNotificationsConfig.Mode != maintnotifications.ModeDisabled {
			t.Errorf("%s: MaxRetries %d, ContextTimeoutEnabled %v, MaintNotificationsConfig %+v; want 0 (none), true, disabled",
				name, o.MaxRetries, o.ContextTimeoutEnabled, o.MaintNotificationsConfig)
		}
		if o.Password != "datapw" {
			t.Errorf("%s: the data nodes' password is %q, want the URL's", name, o.Password)
		}
	}
	if sentinelOpt.SentinelPassword != "sentinelpw" || sentinelOpt.Password != "datapw" {
		t.Errorf("failover options: Sentinel password %q, data password %q", sentinelOpt.SentinelPassword, sentinelOpt.Password)
	}
	if _, err := redisstore.NewFailoverClient("redis://s1:26379"); err == nil {
		t.Error("NewFailoverClient took a URL without master_name")
	}
}
