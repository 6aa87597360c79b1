package sidecar

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/redisstore"
	"github.com/lockproxy/lockproxy/resp"
)

// EnvPrefix begins the name of every variable of Config.
const EnvPrefix = "LOCKPROXY_"

// Config is lockproxy's whole configuration, read from LOCKPROXY_*
// variables. Its envDefault tags are the one place each default is
// written: DefaultConfig parses them, lockproxy -h prints them, tests hold
// the docs, the Helm chart, lockcore.DefaultConfig and resp.DefaultLimits
// to them. The help tags are what `lockproxy -h` and the README show.
type Config struct {
	Listen            string        `env:"LISTEN" envDefault:"127.0.0.1:6380" help:"RESP listen address: host:port, or unix:/path/to.sock"`
	Upstream          string        `env:"UPSTREAM" help:"redis:// or rediss:// URL of the upstream Redis; of its Sentinels, redis://[user:pass@]sentinel1:26379?master_name=NAME&addr=sentinel2:26379, user:pass being the data nodes'; or of Redis Cluster nodes, redis://[user:pass@]node1:7000?addr=node2:7001; empty: the embedded in-process store"`
	UpstreamMode      string        `env:"UPSTREAM_MODE" envDefault:"auto" help:"how LOCKPROXY_UPSTREAM is read: auto (sentinel when it has master_name; cluster when it has addr, or its one server reports cluster_enabled:1; else single), single, sentinel or cluster"`
	SentinelUsername  string        `env:"SENTINEL_USERNAME" help:"ACL user on the Sentinels themselves (with LOCKPROXY_SENTINEL_PASSWORD); sentinel mode only"`
	SentinelPassword  string        `env:"SENTINEL_PASSWORD" help:"password of the Sentinels themselves, apart from the data nodes' in LOCKPROXY_UPSTREAM; empty: Sentinels without auth; sentinel mode only"`
	ReplicaAcks       int           `env:"REPLICA_ACKS" envDefault:"0" help:"a grant, renewal or hand-off is answered only once WAIT n confirms n replicas have it, within LOCKPROXY_UPSTREAM_TIMEOUT; short of n the grant is given back and the client gets -UPSTREAM; 0: no wait; at most 16"`
	UpstreamBatch     int           `env:"UPSTREAM_BATCH" envDefault:"256" help:"most acquire, release and renew calls sent to one Redis in one script call, when they arrive while another call is in flight; 1: each call on its own; 1 to 4096; a Cluster, and LOCKPROXY_REPLICA_ACKS, send each call on its own whatever this says"`
	KeyPrefix         string        `env:"KEY_PREFIX" envDefault:"lock:" help:"prefix of every Redis key; no '{' or '}'"`
	DefaultTTL        time.Duration `env:"DEFAULT_TTL" envDefault:"30s" help:"ttl of a lock acquired without one"`
	MinTTL            time.Duration `env:"MIN_TTL" envDefault:"10ms" help:"smallest ttl (and MAXHOLD) a client may ask for; it must exceed the drift margin (1ms + 1% of it) plus a round trip to the upstream, or the lock is lost as it is granted"`
	MaxTTL            time.Duration `env:"MAX_TTL" envDefault:"24h" help:"largest ttl a client may ask for"`
	MaxWait           time.Duration `env:"MAX_WAIT" envDefault:"5m" help:"longest WAIT a client may ask for"`
	RenewFraction     float64       `env:"RENEW_FRACTION" envDefault:"0.5" help:"owned locks are renewed every ttl × this; 0 < f < 1"`
	RetryBase         time.Duration `env:"RETRY_BASE" envDefault:"10ms" help:"first fallback poll while WAIT waits (releases wake waiters without it)"`
	RetryMultiplier   float64       `env:"RETRY_MULTIPLIER" envDefault:"2" help:"growth of the fallback poll interval; ≥ 1"`
	RetryMax          time.Duration `env:"RETRY_MAX" envDefault:"500ms" help:"largest fallback poll interval; never past the holder's ttl"`
	RetryJitter       float64       `env:"RETRY_JITTER" envDefault:"0.2" help:"random spread of each poll interval, 0..1"`
	WaiterTTL         time.Duration `env:"WAITER_TTL" envDefault:"3s" help:"how long a dead sidecar's waiters keep their place in a lock's queue"`
	LocalHandoffs     int           `env:"LOCAL_HANDOFFS" envDefault:"0" help:"releases in a row that may pass a lock to a waiter on this sidecar ahead of an earlier one on another; 0: strict arrival order"`
	MaxHold           time.Duration `env:"MAX_HOLD" help:"longest an owned lock may be held, renewals included; empty: unlimited"`
	QuietPeriod       autoDuration  `env:"QUIET_PERIOD" envDefault:"auto" help:"no new lock for this long after the upstream lost locks; auto: until the longest lease granted could have run out (at most LOCKPROXY_MAX_TTL + drift)"`
	Password          string        `env:"PASSWORD" help:"require AUTH with this password; empty: no AUTH needed"`
	AdminPassword     string        `env:"ADMIN_PASSWORD" help:"the password of the admin user (AUTH admin <password>), who may LOCK.LIST and LOCK.FORCERELEASE; empty: admin commands off"`
	TLSCert           string        `env:"TLS_CERT" help:"PEM certificate file: serve RESP over TLS (with LOCKPROXY_TLS_KEY)"`
	TLSKey            string        `env:"TLS_KEY" help:"PEM private key file for LOCKPROXY_TLS_CERT"`
	UpstreamTLSCA     string        `env:"UPSTREAM_TLS_CA" help:"PEM CA file to verify a rediss:// upstream; empty: the system roots"`
	UpstreamTLSCert   string        `env:"UPSTREAM_TLS_CERT" help:"PEM client certificate file for a rediss:// upstream"`
	UpstreamTLSKey    string        `env:"UPSTREAM_TLS_KEY" help:"PEM private key file for LOCKPROXY_UPSTREAM_TLS_CERT"`
	MaxClients        int           `env:"MAX_CLIENTS" envDefault:"10000" help:"most open client connections"`
	MaxLocksPerConn   int           `env:"MAX_LOCKS_PER_CONN" envDefault:"1000" help:"most locks one connection may hold"`
	MaxWaitersPerName int           `env:"MAX_WAITERS_PER_NAME" envDefault:"1000" help:"most clients one sidecar lets wait for one lock"`
	MaxDetached       int           `env:"MAX_DETACHED" envDefault:"10000" help:"most DETACHED locks granted through this sidecar that may still be held, whether or not their connection is open"`
	MaxNameBytes      int           `env:"MAX_NAME_BYTES" envDefault:"1024" help:"longest lock name"`
	MaxLimit          int           `env:"MAX_LIMIT" envDefault:"10000" help:"largest LIMIT of a semaphore (LOCK.ACQUIRE … LIMIT n)"`
	MaxArgs           int           `env:"MAX_ARGS" envDefault:"1024" help:"most arguments in one request"`
	MaxBulkBytes      int           `env:"MAX_BULK_BYTES" envDefault:"65536" help:"largest single argument"`
	MaxInlineBytes    int           `env:"MAX_INLINE_BYTES" envDefault:"65536" help:"longest inline (telnet-style) request"`
	MaxQueryBytes     int           `env:"MAX_QUERY_BYTES" envDefault:"1048576" help:"most request bytes buffered per connection"`
	WriteTimeout      time.Duration `env:"WRITE_TIMEOUT" envDefault:"10s" help:"a client that does not read its replies for this long is disconnected"`
	RequestTimeout    time.Duration `env:"REQUEST_TIMEOUT" envDefault:"10s" help:"a client that takes longer than this to send one request is disconnected"`
	UpstreamTimeout   time.Duration `env:"UPSTREAM_TIMEOUT" envDefault:"2s" help:"bound on each upstream call made for a command"`
	CheckInterval     time.Duration `env:"CHECK_INTERVAL" envDefault:"500ms" help:"how often the upstream's identity is checked; after a restart or failover that kept every lock, grants pause this long (and 100ms) while every sidecar checks its own"`
	MetricsListen     string        `env:"METRICS_LISTEN" help:"HTTP address for /metrics, /healthz and /readyz; empty: off"`
	ShutdownTimeout   time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"10s" help:"bound on graceful shutdown after SIGTERM/SIGINT"`
	LogLevel          string        `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	LogFormat         string        `env:"LOG_FORMAT" envDefault:"text" help:"text or json"`
}

func envOptions(environ []string) env.Options {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return env.Options{Environment: m, Prefix: EnvPrefix}
}

// LoadConfig reads the configuration from environ (KEY=value strings, as
// os.Environ gives them) and checks it. Errors name the variable.
func LoadConfig(environ []string) (Config, error) {
	cfg, err := env.ParseAsWithOptions[Config](envOptions(environ))
	if err != nil {
		return cfg, describeEnvError(err)
	}
	return cfg, cfg.Validate()
}

// DefaultConfig is the configuration when no variable is set.
func DefaultConfig() Config {
	cfg, err := env.ParseAsWithOptions[Config](envOptions(nil))
	if err != nil {
		// The tags are constants, and a test parses them: only a broken
		// build gets here.
		panic("sidecar: Config's envDefault tags do not parse: " + err.Error())
	}
	return cfg
}

// Var is one variable of Config, as lockproxy -h lists it.
type Var struct {
	Name    string // LOCKPROXY_…
	Default string // as written in the tag; "" when it has none
	Help    string
}

// Vars lists Config's variables, in its order.
func Vars() []Var {
	t := reflect.TypeFor[Config]()
	vars := make([]Var, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		vars = append(vars, Var{EnvPrefix + f.Tag.Get("env"), f.Tag.Get("envDefault"), f.Tag.Get("help")})
	}
	return vars
}

// describeEnvError rewrites env's errors, which name Go fields, to name
// the variables the user set.
func describeEnvError(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	var errs []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			errs = append(errs, fmt.Errorf("%s: %w", varName(pe.Name), pe.Err))
			continue
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// varName is the variable of Config's field named field.
func varName(field string) string {
	f, ok := reflect.TypeFor[Config]().FieldByName(field)
	if !ok {
		return field
	}
	return EnvPrefix + f.Tag.Get("env")
}

// Validate checks the rules that span fields or go beyond a type.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{varName(field)}, args...)...))
	}
	if c.Listen == "" {
		bad("Listen", "must not be empty")
	}
	c.validateUpstream(bad)
	if strings.ContainsAny(c.KeyPrefix, "{}") {
		bad("KeyPrefix", "%q must not contain '{' or '}': they would break the per-name hash tag", c.KeyPrefix)
	}
	// A lease is valid for its ttl less the drift margin: a ttl no longer
	// than that margin is never valid, and is lost as it is granted.
	if drift := lockcore.Drift(c.MinTTL); c.MinTTL <= drift {
		bad("MinTTL", "%v must exceed the drift margin of such a ttl (%v), plus a round trip to the upstream", c.MinTTL, drift)
	}
	if c.MaxTTL < c.MinTTL {
		bad("MaxTTL", "%v is below LOCKPROXY_MIN_TTL (%v)", c.MaxTTL, c.MinTTL)
	}
	if c.DefaultTTL < c.MinTTL || c.DefaultTTL > c.MaxTTL {
		bad("DefaultTTL", "%v must be between LOCKPROXY_MIN_TTL (%v) and LOCKPROXY_MAX_TTL (%v)", c.DefaultTTL, c.MinTTL, c.MaxTTL)
	}
	if c.MaxWait < 0 {
		bad("MaxWait", "%v is negative", c.MaxWait)
	}
	if !(c.RenewFraction > 0 && c.RenewFraction < 1) {
		bad("RenewFraction", "%v must be between 0 and 1, exclusive", c.RenewFraction)
	}
	if c.RetryBase <= 0 {
		bad("RetryBase", "%v must be positive", c.RetryBase)
	}
	if c.RetryMultiplier < 1 {
		bad("RetryMultiplier", "%v must be at least 1", c.RetryMultiplier)
	}
	if c.RetryMax < c.RetryBase {
		bad("RetryMax", "%v is below LOCKPROXY_RETRY_BASE (%v)", c.RetryMax, c.RetryBase)
	}
	if c.RetryJitter < 0 || c.RetryJitter > 1 {
		bad("RetryJitter", "%v must be between 0 and 1", c.RetryJitter)
	}
	for field, v := range map[string]int{"MaxClients": c.MaxClients, "MaxLocksPerConn": c.MaxLocksPerConn,
		"MaxWaitersPerName": c.MaxWaitersPerName, "MaxDetached": c.MaxDetached,
		"MaxNameBytes": c.MaxNameBytes, "MaxLimit": c.MaxLimit, "MaxArgs": c.MaxArgs, "MaxBulkBytes": c.MaxBulkBytes,
		"MaxInlineBytes": c.MaxInlineBytes, "MaxQueryBytes": c.MaxQueryBytes} {
		if v < 1 {
			bad(field, "%d must be at least 1", v)
		}
	}
	if c.MaxArgs < 8 {
		bad("MaxArgs", "%d is too small for the commands lockproxy serves (at least 8)", c.MaxArgs)
	}
	if c.MaxNameBytes > c.MaxBulkBytes {
		bad("MaxNameBytes", "%d exceeds LOCKPROXY_MAX_BULK_BYTES (%d)", c.MaxNameBytes, c.MaxBulkBytes)
	}
	if c.MaxBulkBytes > c.MaxQueryBytes || c.MaxInlineBytes > c.MaxQueryBytes {
		bad("MaxQueryBytes", "%d is below LOCKPROXY_MAX_BULK_BYTES or LOCKPROXY_MAX_INLINE_BYTES", c.MaxQueryBytes)
	}
	for field, d := range map[string]time.Duration{"WriteTimeout": c.WriteTimeout, "RequestTimeout": c.RequestTimeout,
		"UpstreamTimeout": c.UpstreamTimeout, "ShutdownTimeout": c.ShutdownTimeout, "WaiterTTL": c.WaiterTTL} {
		if d <= 0 {
			bad(field, "%v must be positive", d)
		}
	}
	if c.LocalHandoffs < 0 {
		bad("LocalHandoffs", "%d is negative", c.LocalHandoffs)
	}
	if c.MaxHold < 0 {
		bad("MaxHold", "%v is negative", c.MaxHold)
	} else if c.MaxHold > 0 && c.MaxHold < c.MinTTL {
		// The cap also lowers the lease's ttl in the store to itself.
		bad("MaxHold", "%v is below LOCKPROXY_MIN_TTL (%v)", c.MaxHold, c.MinTTL)
	}
	if c.QuietPeriod.set && c.QuietPeriod.d < 0 {
		bad("QuietPeriod", "%v is negative", c.QuietPeriod.d)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("TLSCert", "LOCKPROXY_TLS_CERT and LOCKPROXY_TLS_KEY go together")
	}
	if (c.UpstreamTLSCert == "") != (c.UpstreamTLSKey == "") {
		bad("UpstreamTLSCert", "LOCKPROXY_UPSTREAM_TLS_CERT and LOCKPROXY_UPSTREAM_TLS_KEY go together")
	}
	if (c.UpstreamTLSCA != "" || c.UpstreamTLSCert != "") && !strings.HasPrefix(c.Upstream, "rediss://") {
		bad("UpstreamTLSCA", "upstream TLS settings need a rediss:// LOCKPROXY_UPSTREAM")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("LogLevel", "%q is not debug, info, warn or error", c.LogLevel)
	}
	switch strings.ToLower(c.LogFormat) {
	case "text", "json":
	default:
		bad("LogFormat", "%q is not text or json", c.LogFormat)
	}
	return errors.Join(errs...)
}

// Upstream modes, the values of LOCKPROXY_UPSTREAM_MODE.
const (
	modeAuto     = "auto"
	modeSingle   = "single"
	modeSentinel = "sentinel"
	modeCluster  = "cluster"
)

// maxUpstreamBatch bounds LOCKPROXY_UPSTREAM_BATCH: a batch is one script
// run, during which Redis serves nobody else, so it stays a few ms long.
const maxUpstreamBatch = 4096

// maxReplicaAcks bounds LOCKPROXY_REPLICA_ACKS. A Sentinel deployment runs
// a primary and a few replicas (Bitnami's chart: two by default); n above
// the replicas that exist can never be met, so every grant would wait out
// LOCKPROXY_UPSTREAM_TIMEOUT and fail. 16 leaves room for any real fleet,
// and still catches a value meant for another setting (a ttl, a timeout).
const maxReplicaAcks = 16

// upstreamMode is how LOCKPROXY_UPSTREAM is read, auto resolved as far as
// the URL tells: sentinel when it names a master set, cluster when it
// lists more servers, else single (which a server that reports
// cluster_enabled:1 turns into cluster at start: see upstreamClient). ""
// without an upstream.
func (c Config) upstreamMode() string {
	if c.Upstream == "" {
		return ""
	}
	mode := strings.ToLower(c.UpstreamMode)
	if mode != modeAuto {
		return mode
	}
	u, err := url.Parse(c.Upstream)
	switch {
	case err != nil:
	case u.Query().Has("master_name"):
		return modeSentinel
	case u.Query().Has("addr"):
		return modeCluster
	}
	return modeSingle
}

// validateUpstream checks LOCKPROXY_UPSTREAM in its mode, and the settings
// that go with it. The URL is parsed here as the client will parse it, so
// that a bad one stops start-up with the variable named, before any part
// is built.
func (c Config) validateUpstream(bad func(field, format string, args ...any)) {
	modeKnown := true
	switch mode := strings.ToLower(c.UpstreamMode); mode {
	case modeAuto:
	case modeSingle, modeSentinel, modeCluster:
		if c.Upstream == "" {
			bad("UpstreamMode", "%s needs a LOCKPROXY_UPSTREAM (empty, it is the embedded store)", mode)
		}
	default:
		bad("UpstreamMode", "%q is not auto, single, sentinel or cluster", c.UpstreamMode)
		modeKnown = false
	}
	mode := c.upstreamMode()
	if c.Upstream != "" && modeKnown {
		u, err := url.Parse(c.Upstream)
		switch {
		case err != nil || (u.Scheme != "redis" && u.Scheme != "rediss"):
			bad("Upstream", "must be a redis:// or rediss:// URL")
		case mode == modeSentinel && !u.Query().Has("master_name"):
			bad("Upstream", "LOCKPROXY_UPSTREAM_MODE is sentinel, but the URL has no master_name=: name the master set "+
				"the Sentinels watch, as in redis://sentinel1:26379?master_name=mymaster&addr=sentinel2:26379")
		case mode == modeSentinel:
			if _, err := redisstore.ParseFailoverURL(c.Upstream); err != nil {
				bad("Upstream", "%v", err)
			}
		case u.Query().Has("master_name"):
			bad("Upstream", "master_name= names a Sentinel master set, but LOCKPROXY_UPSTREAM_MODE is %s: set it to sentinel or auto", mode)
		case mode == modeCluster:
			if _, err := redisstore.ParseClusterURL(c.Upstream); err != nil {
				bad("Upstream", "%v", err)
			}
		case u.Query().Has("addr"):
			bad("Upstream", "addr= lists more servers, which one Redis does not have: for Sentinels, add master_name=; "+
				"for a Redis Cluster, set LOCKPROXY_UPSTREAM_MODE to cluster or auto")
		default:
			if _, err := redis.ParseURL(c.Upstream); err != nil {
				bad("Upstream", "%v", err)
			}
		}
	}
	// The Sentinels' credentials would otherwise be ignored in silence, and
	// a password meant for the data nodes never sent.
	switch {
	case !modeKnown:
	case mode != modeSentinel:
		upstream := "there is no LOCKPROXY_UPSTREAM"
		if c.Upstream != "" {
			upstream = "LOCKPROXY_UPSTREAM is one Redis, whose credentials go in the URL's user:pass@"
		}
		if c.SentinelUsername != "" {
			bad("SentinelUsername", "is for the Sentinels of a Sentinel upstream (master_name= in LOCKPROXY_UPSTREAM), but %s", upstream)
		}
		if c.SentinelPassword != "" {
			bad("SentinelPassword", "is for the Sentinels of a Sentinel upstream (master_name= in LOCKPROXY_UPSTREAM), but %s", upstream)
		}
	case c.SentinelUsername != "" && c.SentinelPassword == "":
		bad("SentinelUsername", "needs LOCKPROXY_SENTINEL_PASSWORD")
	}
	if c.UpstreamBatch < 1 || c.UpstreamBatch > maxUpstreamBatch {
		bad("UpstreamBatch", "%d must be between 1 and %d", c.UpstreamBatch, maxUpstreamBatch)
	}
	if c.ReplicaAcks < 0 || c.ReplicaAcks > maxReplicaAcks {
		bad("ReplicaAcks", "%d must be between 0 and %d", c.ReplicaAcks, maxReplicaAcks)
	} else if c.ReplicaAcks > 0 && c.Upstream == "" {
		bad("ReplicaAcks", "the embedded store has no replicas to wait for: set LOCKPROXY_UPSTREAM, or leave this 0")
	}
}

// logAttrs is the configuration for the start-up log, secrets masked: the
// passwords, and the password inside the upstream URL.
func (c Config) logAttrs() []any {
	v := reflect.ValueOf(c)
	t := v.Type()
	attrs := make([]any, 0, t.NumField())
	for i := range t.NumField() {
		val := fmt.Sprint(v.Field(i).Interface())
		switch t.Field(i).Name {
		case "Password", "SentinelPassword", "AdminPassword":
			if val != "" {
				val = "xxxxx"
			}
		case "Upstream":
			val = redactURL(val)
		}
		attrs = append(attrs, slog.String(EnvPrefix+t.Field(i).Tag.Get("env"), val))
	}
	return attrs
}

// quietPeriod is LOCKPROXY_QUIET_PERIOD, auto resolved: long enough for
// every lease granted through a restarted upstream to have expired, ttls
// up to LOCKPROXY_MAX_TTL and the drift allowed for them included.
func (c Config) quietPeriod() time.Duration {
	return c.QuietPeriod.or(c.MaxTTL + lockcore.Drift(c.MaxTTL))
}

// lockcoreConfig is what lockcore.New takes, but for the Observer and the
// Logger.
func (c Config) lockcoreConfig() lockcore.Config {
	return lockcore.Config{
		DefaultTTL:    c.DefaultTTL,
		RenewFraction: c.RenewFraction,
		Retry: lockcore.Backoff{Base: c.RetryBase, Multiplier: c.RetryMultiplier,
			Max: c.RetryMax, Jitter: c.RetryJitter},
		MaxLocksPerSession: c.MaxLocksPerConn,
		MaxWaitersPerName:  c.MaxWaitersPerName,
		MaxDetached:        c.MaxDetached,
		MaxHold:            c.MaxHold,
		QuietPeriod:        c.quietPeriod(),
		QuietAuto:          !c.QuietPeriod.set,
		CheckInterval:      c.CheckInterval,
		UpstreamTimeout:    c.UpstreamTimeout,
		WaiterTTL:          c.WaiterTTL,
		LocalHandoffs:      c.LocalHandoffs,
	}
}

// respLimits are the request bounds for resp.Options.
func (c Config) respLimits() resp.Limits {
	return resp.Limits{MaxArgs: c.MaxArgs, MaxBulkBytes: c.MaxBulkBytes,
		MaxInlineBytes: c.MaxInlineBytes, MaxQueryBytes: c.MaxQueryBytes}
}

// autoDuration is a duration, or "auto" for one derived from others.
type autoDuration struct {
	d   time.Duration
	set bool // false: auto
}

// UnmarshalText reads "auto" or a Go duration.
func (a *autoDuration) UnmarshalText(b []byte) error {
	if string(b) == "auto" {
		*a = autoDuration{}
		return nil
	}
	d, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*a = autoDuration{d: d, set: true}
	return nil
}

func (a autoDuration) String() string {
	if !a.set {
		return "auto"
	}
	return a.d.String()
}

// or returns the duration, or def when it is auto.
func (a autoDuration) or(def time.Duration) time.Duration {
	if a.set {
		return a.d
	}
	return def
}
