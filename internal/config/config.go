// Package config is Petrel's typed configuration: plain data, defaults that work, and
// validation whose errors name the file, the line and the key.
//
// Loading is: defaults → file → validation. The development instance (`petrel serve` with no
// config file) is Dev(); its ports and domain are a promise to users and scripts, documented in
// the README, and change only together with it.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the whole configuration. Every field documents its key and default.
type Config struct {
	// hostname: the name this server greets with and writes into Received headers.
	// Default: the machine's host name ("localhost" for the development instance).
	Hostname string `toml:"hostname"`
	// data: the data directory (database, certificate of the development instance, spool).
	// The global flag --data overrides it (relative to the working directory, as any flag).
	// Default: petrel-data, next to the config file (in the working directory for the
	// development instance). Paths in a config file follow ResolvePath.
	Data string `toml:"data"`
	// domains: domains created at start if absent (more can be added with `petrel domain add`).
	Domains []string `toml:"domains"`
	// user: when started as root, switch to this user once the ports are bound (the data
	// directory is given to it). Default: "" (keep running as whoever started it).
	User string `toml:"user"`

	Log  Log  `toml:"log"`
	TLS  TLS  `toml:"tls"`
	ACME ACME `toml:"acme"`
	SMTP SMTP `toml:"smtp"`
	POP3 POP3 `toml:"pop3"`
	IMAP IMAP `toml:"imap"`
	HTTP HTTP `toml:"http"`
	// ManageSieve configures the ManageSieve listener (RFC 5804) for users' Sieve scripts.
	ManageSieve ManageSieve `toml:"managesieve"`
	Limits      Limits      `toml:"limits"`
	Quota       Quota       `toml:"quota"`
	Store       Store       `toml:"store"`

	MailAuth MailAuth `toml:"mail_auth"` // checks of inbound mail (mailauth.go)
	Sending  Sending  `toml:"sending"`   // per-account sending limits (mailauth.go)
	Door     Door     `toml:"door"`      // checks at the door of the MX port and external filters (door.go)
	// SubmissionFilter: external filters on the submission ports (door.go)
	SubmissionFilter SubmissionFilter `toml:"submission_filter"`
	// DNS is the resolver every part uses unless its own section names one (mailauth.go).
	DNS  DNS  `toml:"dns"`
	Junk Junk `toml:"junk"` // the built-in junk classifier (junk.go)

	// Outbound configures delivery to other domains: the queue, its schedule and its routes.
	Outbound Outbound `toml:"outbound"`
	// Pull configures the polling of outside mailboxes into accounts (`petrel account pull`).
	Pull Pull `toml:"pull"`

	// Dev marks the development instance: self-signed certificate in the data directory and a
	// dev@<domain> account whose password is printed once.
	Dev bool `toml:"-"`
	// File is the path the config was read from ("" for the development instance).
	File string `toml:"-"`
}

// Log configures the structured log.
type Log struct {
	Format string `toml:"format"` // "text" (default) or "json"
	Level  string `toml:"level"`  // "debug", "info" (default), "warn", "error"
}

// TLS names the certificate served on every TLS listener. SIGHUP reloads the files.
type TLS struct {
	Cert string `toml:"cert"` // PEM certificate chain; required unless the development instance
	Key  string `toml:"key"`  // PEM private key
}

// ACME gets the certificate of every TLS listener from an ACME CA (RFC 8555) and renews it,
// instead of [tls] cert and key. The names are the host name and autoconfig.<domain> and
// mta-sts.<domain> of every hosted domain; the CA checks them on this server's port 443
// (tls-alpn-01) or 80 (http-01), so those ports must be reachable from the Internet.
type ACME struct {
	Enabled bool `toml:"enabled"` // default false
	// contact: e-mail address the CA may write to about the account (expiry notices).
	// Default "" (none).
	Contact string `toml:"contact"`
	// directory: the CA's directory URL. Default Let's Encrypt's production directory.
	Directory string `toml:"directory"`
	// ca_file: PEM certificates trusted for the directory's HTTPS, for a private CA or a
	// test CA. Default "": the system's roots.
	CAFile string `toml:"ca_file"`
	// challenge: "tls-alpn-01" (default; on the HTTPS listener) or "http-01" (on the plain
	// HTTP listener), tried first; the other when the CA does not offer it.
	Challenge string `toml:"challenge"`
}

// SMTP configures the three SMTP roles.
type SMTP struct {
	Listen            []string `toml:"listen"`              // inbound MX, default ["0.0.0.0:25"]
	Submission        []string `toml:"submission"`          // STARTTLS submission, default ["0.0.0.0:587"]
	Submissions       []string `toml:"submissions"`         // implicit-TLS submission, default ["0.0.0.0:465"]
	MaxMessageBytes   int64    `toml:"max_message_bytes"`   // SIZE, default 52428800 (50 MiB)
	MaxRecipients     int      `toml:"max_recipients"`      // per transaction, default 100
	MaxLineLength     int      `toml:"max_line_length"`     // command and text lines, default 2000
	ReadTimeout       Duration `toml:"read_timeout"`        // one whole command line, default 5m (RFC 5321 §4.5.3.2.7)
	DataTimeout       Duration `toml:"data_timeout"`        // DATA/BDAT: longest pause and lag behind data_min_rate, default 5m
	DataMinRate       int      `toml:"data_min_rate"`       // DATA/BDAT: bytes per second a body must average, default 500
	AllowInsecureAuth bool     `toml:"allow_insecure_auth"` // AUTH before TLS, default false
	// sender_policy: "own" (default: submission may use only the account's addresses and aliases
	// as MAIL FROM) or "any".
	SenderPolicy string `toml:"sender_policy"`
}

// POP3 configures the POP3 listeners.
type POP3 struct {
	Listen             []string `toml:"listen"`               // STLS, default ["0.0.0.0:110"]
	ListenTLS          []string `toml:"listen_tls"`           // implicit TLS, default ["0.0.0.0:995"]
	AllowPlaintextAuth bool     `toml:"allow_plaintext_auth"` // USER/PASS before STLS, default false
	IdleTimeout        Duration `toml:"idle_timeout"`         // default 10m (RFC 1939 §3)
	CommandTimeout     Duration `toml:"command_timeout"`      // one whole command line, default 1m
	MaxLineLength      int      `toml:"max_line_length"`      // default 512
	// expire: advertised in CAPA EXPIRE (RFC 2449 §6.7): "" (not advertised), "NEVER" or days.
	Expire     string `toml:"expire"`
	LoginDelay int    `toml:"login_delay"` // CAPA LOGIN-DELAY seconds, 0 = not advertised
}

// ManageSieve configures the ManageSieve listener (RFC 5804).
type ManageSieve struct {
	Listen             []string `toml:"listen"`               // STARTTLS, default ["0.0.0.0:4190"]; [] turns it off
	AllowPlaintextAuth bool     `toml:"allow_plaintext_auth"` // AUTHENTICATE before STARTTLS, default false
	IdleTimeout        Duration `toml:"idle_timeout"`         // wait for a command once logged in, default 10m
	CommandTimeout     Duration `toml:"command_timeout"`      // one whole command (its script included), default 1m
	MaxScripts         int      `toml:"max_scripts"`          // scripts per account, default 32
}

// IMAP configures the IMAP listeners.
type IMAP struct {
	Listen             []string `toml:"listen"`               // STARTTLS, default ["0.0.0.0:143"]
	ListenTLS          []string `toml:"listen_tls"`           // implicit TLS, default ["0.0.0.0:993"]
	AllowPlaintextAuth bool     `toml:"allow_plaintext_auth"` // LOGIN/AUTHENTICATE before STARTTLS, default false
	IdleTimeout        Duration `toml:"idle_timeout"`         // autologout, IDLE included, default 30m (RFC 9051 §5.4)
	CommandTimeout     Duration `toml:"command_timeout"`      // one whole command (literals included), default 1m
	MaxCommandBytes    int      `toml:"max_command_bytes"`    // one command with its literals, APPEND's message aside, default 81920
	AppendLimit        int64    `toml:"append_limit"`         // largest APPEND message (APPENDLIMIT), default 52428800 (smtp.max_message_bytes)
	MaxAccountSessions int      `toml:"max_account_sessions"` // logged-in sessions per account on each of listen and listen_tls, default 100
	Compress           bool     `toml:"compress"`             // offer COMPRESS=DEFLATE (RFC 4978) after login, default true
	// max_notify_pending: the mailboxes with unreported changes one NOTIFY session (RFC 5465)
	// may hold between its commands; a change to one more ends its NOTIFY with
	// NOTIFICATIONOVERFLOW (§5.8). It bounds the memory a session that never reads costs.
	// Default 1000.
	MaxNotifyPending int `toml:"max_notify_pending"`
}

// HTTP configures the web listener: client set-up (autoconfig), the MTA-STS policy, health
// and metrics (and the webmail and admin pages when they come).
type HTTP struct {
	Listen    []string `toml:"listen"`     // plain HTTP, default ["0.0.0.0:80"]
	ListenTLS []string `toml:"listen_tls"` // HTTPS, default ["0.0.0.0:443"]
	// redirect_https: plain HTTP answers every path with a redirect to HTTPS except the ones
	// that must work without TLS (client set-up, ACME challenges). Default true.
	RedirectHTTPS bool `toml:"redirect_https"`
	// hsts_max_age: Strict-Transport-Security max-age in seconds on HTTPS answers, 0: none.
	// Default 31536000 (a year).
	HSTSMaxAge        int      `toml:"hsts_max_age"`
	ReadHeaderTimeout Duration `toml:"read_header_timeout"` // TLS handshake and request header, default 10s
	ReadTimeout       Duration `toml:"read_timeout"`        // the whole request, body included, default 5m
	WriteTimeout      Duration `toml:"write_timeout"`       // the whole response, default 5m
	IdleTimeout       Duration `toml:"idle_timeout"`        // keep-alive wait for the next request, default 2m
	MaxHeaderBytes    int      `toml:"max_header_bytes"`    // request line and header, default 65536
	// metrics_allow: client networks (CIDR) that may read /metrics besides loopback.
	MetricsAllow []string `toml:"metrics_allow"`
	// metrics_token: a bearer token that opens /metrics from anywhere ("" none). Default "".
	MetricsToken string `toml:"metrics_token"`
	// mta_sts_mode: the MTA-STS policy served at mta-sts.DOMAIN (RFC 8461): "testing"
	// (default), "enforce", "none" (withdraws a published policy) or "off" (nothing served).
	MTASTSMode   string `toml:"mta_sts_mode"`
	MTASTSMaxAge int    `toml:"mta_sts_max_age"` // seconds, default 604800 (a week)
	// max_upload: the largest message the webmail accepts from the browser (text and
	// attachments), in bytes, default 26214400 (25 MiB); the submission size limit applies too.
	MaxUpload int64 `toml:"max_upload"`
}

// Limits protect the server from floods and guessing.
type Limits struct {
	MaxConnections      int      `toml:"max_connections"`        // per listener, default 2000
	MaxConnectionsPerIP int      `toml:"max_connections_per_ip"` // per listener, default 50
	AuthFailureDelay    Duration `toml:"auth_failure_delay"`     // first failed login, default 1s
	AuthFailureMaxDelay Duration `toml:"auth_failure_max_delay"` // growth cap, default 15s
	MaxAuthFailures     int      `toml:"max_auth_failures"`      // per connection, default 3
	// login_idle_timeout: before login (submission, POP3, IMAP), the wait for each command, default 1m.
	LoginIdleTimeout Duration `toml:"login_idle_timeout"`
	// login_timeout: a submission, POP3 or IMAP connection not logged in by then is closed, default 3m.
	LoginTimeout Duration `toml:"login_timeout"`
	// max_connection_rate_per_ip: new connections per minute per listener and client address
	// (IPv6: per /64), with a burst of as many; 0 (default) for no limit.
	MaxConnectionRatePerIP int `toml:"max_connection_rate_per_ip"`
}

// Quota is the default quota of every account (RFC 9208); `petrel account quota` sets an
// account's own. The store enforces it at SMTP delivery, IMAP APPEND and COPY.
type Quota struct {
	Storage  int64 `toml:"storage"`  // bytes of messages an account may keep, default 0 (no limit)
	Messages int64 `toml:"messages"` // number of messages, default 0 (no limit)
}

// Store chooses where Petrel keeps accounts and mail.
type Store struct {
	// backend: "sqlite" (default), the embedded store in the data directory, or "postgres",
	// a PostgreSQL database that several Petrel nodes can share.
	Backend string `toml:"backend"`
	// dsn: the PostgreSQL connection string, key=value ("host=db1 dbname=petrel user=petrel")
	// or a URL ("postgres://petrel@db1/petrel"). Required for postgres. It must not hold the
	// password: give that in password_file, or in the environment (PGPASSWORD, or libpq's
	// ~/.pgpass), so that the config file can be world-readable and kept in version control.
	DSN string `toml:"dsn"`
	// password_file: a file whose first line is the PostgreSQL password. Default "": the
	// environment's, if any.
	PasswordFile string `toml:"password_file"`
	// pool_size: connections a node opens to PostgreSQL at most. Default 0: 16 (enough for
	// that many deliveries to share one WAL flush of the database's group commit), plus one
	// for change notifications and one while POP3 sessions hold maildrop locks.
	PoolSize int `toml:"pool_size"`
	// migrate: bring the database schema up to date at start. Default true; false leaves it
	// to ` + "`petrel migrate`" + ` and makes serve refuse a schema that is not current.
	Migrate bool `toml:"migrate"`
	// backup_rate: MB/s of the store that ` + "`petrel backup`" + ` copies, hashes and verifies at
	// most (a token bucket), so that the server's deliveries beside it keep their pace
	// (docs/benchmarks.md). Default 20; 0: no limit (a backup with the server stopped).
	BackupRate int `toml:"backup_rate"`
}

// Pull configures the polling of outside POP3 and IMAP mailboxes into accounts.
type Pull struct {
	// enabled: the server polls the pull sources of its accounts. Default true.
	Enabled bool `toml:"enabled"`
	// key_file: the AES-256 key that seals the sources' passwords in the store (created, mode
	// 0600, by the first `petrel account pull add`). It must not be inside the data
	// directory, or a copy of that directory would carry the key with the passwords. Default:
	// pull.key next to the config file; for the development instance, DATA.pull-key beside
	// the data directory.
	KeyFile string `toml:"key_file"`
	// check: how often the server looks for due sources. Default "15s".
	Check Duration `toml:"check"`
	// workers: sources polled at once. Default 2.
	Workers int `toml:"workers"`
	// timeout: the longest one poll may last; a source is leased to one node for a minute
	// more. Default "10m".
	Timeout Duration `toml:"timeout"`
}

// PullKeyFile is the key file of [pull], with its default.
func (c *Config) PullKeyFile() string {
	if c.Pull.KeyFile != "" {
		return c.Pull.KeyFile
	}
	if c.File != "" {
		return filepath.Join(filepath.Dir(c.File), "pull.key")
	}
	return filepath.Clean(c.Data) + ".pull-key"
}

// Outbound configures the outbound queue (mail to other domains, bounces).
type Outbound struct {
	// enabled: submission accepts recipients at other domains and the queue delivers them.
	// Default true; false refuses them at RCPT (550 5.7.1), as before outbound existed.
	Enabled bool `toml:"enabled"`
	// resolver: the DNS server (host:port) for MX, A/AAAA, TLSA and MTA-STS lookups. Default ""
	// reads /etc/resolv.conf. DANE trusts its AD bit: point it at a validating resolver.
	Resolver string `toml:"resolver"`
	// port: the destination port of MX hosts. Default 25; other values are for test set-ups.
	Port int `toml:"port"`
	// smart_host: relay everything through this host:port (587 STARTTLS, or 465 implicit TLS)
	// instead of MX lookups, with AUTH when smart_host_user is set. Default "" (direct).
	SmartHost         string `toml:"smart_host"`
	SmartHostUser     string `toml:"smart_host_user"`
	SmartHostPassword string `toml:"smart_host_password"`
	// ca_file: PEM certificates trusted for verified TLS (smart host, DANE-TA/MTA-STS
	// fall back to the system roots when empty). Default "".
	CAFile string `toml:"ca_file"`
	// dane and mta_sts: apply DANE (RFC 7672) and MTA-STS (RFC 8461). Default true.
	DANE   bool `toml:"dane"`
	MTASTS bool `toml:"mta_sts"`
	// dkim_sign: sign outgoing mail with the sender domain's DKIM keys. Default true.
	DKIMSign bool `toml:"dkim_sign"`
	// retry_first, retry_max: the wait after the first failed attempt, doubling up to
	// retry_max. Default 5m and 4h.
	RetryFirst Duration `toml:"retry_first"`
	RetryMax   Duration `toml:"retry_max"`
	// expire: give up and bounce after this long in the queue. Default 120h (5 days).
	Expire Duration `toml:"expire"`
	// delay_warning: tell the sender once when a message has waited this long. Default 0 (off).
	DelayWarning Duration `toml:"delay_warning"`
	// workers: delivery attempts at once; per_domain: connections at once to one domain;
	// messages_per_connection: messages sent over one connection. Defaults 32, 4, 50.
	Workers               int `toml:"workers"`
	PerDomain             int `toml:"per_domain"`
	MessagesPerConnection int `toml:"messages_per_connection"`
	// attempt_timeout: bound on one connection set-up and on one message's transaction. Default 15m.
	AttemptTimeout Duration `toml:"attempt_timeout"`
	// postmaster: where double bounces go. Default postmaster@ the first of domains.
	Postmaster string `toml:"postmaster"`
	// forward: aliases with targets at other domains forward there through the queue, the
	// envelope sender rewritten by SRS (the key is srs.key in the data directory). Default
	// true; false skips such targets, as before forwarding existed.
	Forward bool `toml:"forward"`
	// forward_per_alias_hour: messages one alias forwards per clock hour; more are deferred
	// (451 4.7.1). Default 1000; 0 means no bound.
	ForwardPerAliasHour int `toml:"forward_per_alias_hour"`
}

// Duration is a time.Duration written as "30s", "5m", "1h".
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (use e.g. 30s, 5m, 1h): %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Default returns a configuration with every default filled in, on the standard ports.
func Default() *Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return &Config{
		Hostname: host,
		Data:     "petrel-data",
		Log:      Log{Format: "text", Level: "info"},
		Store:    Store{Backend: "sqlite", Migrate: true, BackupRate: DefaultBackupRate},
		SMTP: SMTP{
			Listen:          []string{"0.0.0.0:25"},
			Submission:      []string{"0.0.0.0:587"},
			Submissions:     []string{"0.0.0.0:465"},
			MaxMessageBytes: 50 << 20,
			MaxRecipients:   100,
			MaxLineLength:   2000,
			ReadTimeout:     Duration{5 * time.Minute},
			DataTimeout:     Duration{5 * time.Minute},
			DataMinRate:     500,
			SenderPolicy:    "own",
		},
		POP3: POP3{
			Listen:         []string{"0.0.0.0:110"},
			ListenTLS:      []string{"0.0.0.0:995"},
			IdleTimeout:    Duration{10 * time.Minute},
			CommandTimeout: Duration{time.Minute},
			MaxLineLength:  512,
		},
		IMAP: IMAP{
			Listen:             []string{"0.0.0.0:143"},
			ListenTLS:          []string{"0.0.0.0:993"},
			IdleTimeout:        Duration{30 * time.Minute},
			CommandTimeout:     Duration{time.Minute},
			MaxCommandBytes:    80 << 10,
			AppendLimit:        50 << 20,
			MaxAccountSessions: 100,
			Compress:           true,
			MaxNotifyPending:   1000,
		},
		ManageSieve: ManageSieve{
			Listen:         []string{"0.0.0.0:4190"},
			IdleTimeout:    Duration{10 * time.Minute},
			CommandTimeout: Duration{time.Minute},
			MaxScripts:     32,
		},
		HTTP: HTTP{
			Listen:            []string{"0.0.0.0:80"},
			ListenTLS:         []string{"0.0.0.0:443"},
			RedirectHTTPS:     true,
			HSTSMaxAge:        365 * 24 * 3600,
			ReadHeaderTimeout: Duration{10 * time.Second},
			ReadTimeout:       Duration{5 * time.Minute},
			WriteTimeout:      Duration{5 * time.Minute},
			IdleTimeout:       Duration{2 * time.Minute},
			MaxHeaderBytes:    64 << 10,
			MTASTSMode:        "testing",
			MTASTSMaxAge:      7 * 24 * 3600,
			MaxUpload:         25 << 20,
		},
		Pull: Pull{Enabled: true, Check: Duration{15 * time.Second}, Workers: 2, Timeout: Duration{10 * time.Minute}},
		Outbound: Outbound{
			Enabled:               true,
			Port:                  25,
			DANE:                  true,
			MTASTS:                true,
			DKIMSign:              true,
			RetryFirst:            Duration{5 * time.Minute},
			RetryMax:              Duration{4 * time.Hour},
			Expire:                Duration{120 * time.Hour},
			Workers:               32,
			PerDomain:             4,
			MessagesPerConnection: 50,
			AttemptTimeout:        Duration{15 * time.Minute},
			Forward:               true,
			ForwardPerAliasHour:   1000,
		},
		Limits: Limits{
			MaxConnections:      2000,
			MaxConnectionsPerIP: 50,
			AuthFailureDelay:    Duration{time.Second},
			AuthFailureMaxDelay: Duration{15 * time.Second},
			MaxAuthFailures:     3,
			LoginIdleTimeout:    Duration{time.Minute},
			LoginTimeout:        Duration{3 * time.Minute},
		},
		MailAuth:         defaultMailAuth(),
		Door:             defaultDoor(),
		SubmissionFilter: SubmissionFilter{Spam: "reject"},
		Sending:          Sending{Policy: "soft"},
		Junk:             defaultJunk(),
	}
}

// DevDomain is the hosted domain of the development instance.
const DevDomain = "example.test"

// DefaultBackupRate is store.backup_rate's default, in MB/s: measured in docs/benchmarks.md
// (delivery beside a backup: 15% slower at 20 MB/s, 20-32% at 40 on a quiet machine), and
// about two and a half minutes per GB of store copied, read back and verified.
const DefaultBackupRate = 20

// Dev returns the development instance: loopback only, fixed high ports, a self-signed
// certificate and the domain example.test. The README documents these values.
func Dev() *Config {
	c := Default()
	c.Dev = true
	c.Hostname = "localhost"
	c.Domains = []string{DevDomain}
	c.SMTP.Listen = []string{"127.0.0.1:2525"}
	c.SMTP.Submission = []string{"127.0.0.1:2587"}
	c.SMTP.Submissions = []string{"127.0.0.1:2465"}
	c.POP3.Listen = []string{"127.0.0.1:2110"}
	c.POP3.ListenTLS = []string{"127.0.0.1:2995"}
	c.IMAP.Listen = []string{"127.0.0.1:2143"}
	c.IMAP.ListenTLS = []string{"127.0.0.1:2993"}
	c.HTTP.Listen = []string{"127.0.0.1:8080"}
	c.HTTP.ListenTLS = []string{"127.0.0.1:8443"}
	c.ManageSieve.Listen = []string{"127.0.0.1:24190"}
	// Plain HTTP serves everything on loopback, and no HSTS: a browser applies HSTS to the
	// host name on every port, so it would turn every other http://localhost page into HTTPS.
	c.HTTP.RedirectHTTPS = false
	c.HTTP.HSTSMaxAge = 0
	// A developer hammering the instance from one address should not be throttled like an
	// attacker; the limits stay on, just wider.
	c.Limits.MaxConnectionsPerIP = 1000
	c.Limits.MaxConnections = 5000
	// The development instance may run where DNS does not work (offline, a test's network
	// namespace): it records temperror rather than turning mail away.
	c.MailAuth.DeferTempError = false
	// ... and where a resolver that cannot reach the internet lets queries time out, a
	// message should not wait the RFC's 20 s for each.
	c.MailAuth.DNSTimeout = Duration{5 * time.Second}
	return c
}

// Error is a configuration error that names where it is.
type Error struct {
	File string
	Line int    // 0 if unknown
	Key  string // dotted key, "" for syntax errors
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

// Load reads a TOML file over the defaults and validates the result.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, src)
}

// Parse is Load on bytes already read; path names the file in errors and anchors the
// relative paths in it (see ResolvePath).
func Parse(path string, src []byte) (*Config, error) {
	c := Default()
	c.File = path
	if err := DecodeTOML(path, src, c); err != nil {
		return nil, err
	}
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	for key, p := range map[string]*string{"data": &c.Data, "tls.cert": &c.TLS.Cert, "tls.key": &c.TLS.Key, "acme.ca_file": &c.ACME.CAFile,
		"store.password_file": &c.Store.PasswordFile, "pull.key_file": &c.Pull.KeyFile} {
		if *p == "" {
			continue
		}
		if *p, err = ResolvePath(*p, base); err != nil {
			return nil, Locate(&Error{Key: key, Msg: err.Error()}, path, src)
		}
	}
	if err := c.validate(); err != nil {
		return nil, Locate(err, path, src)
	}
	return c, nil
}

// DecodeTOML decodes src into v, refusing syntax errors, type mismatches and unknown keys
// with an *Error that names the file, the line and the key. The client tools' config uses it
// too, so that both files report mistakes alike.
func DecodeTOML(path string, src []byte, v any) error {
	md, err := toml.Decode(string(src), v)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return &Error{File: path, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
		}
		// Type mismatches come back from the TOML library as plain errors whose text carries
		// the line and key; pick them out so the operator still gets file:line: key.
		if m := typeErr.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return &Error{File: path, Line: line, Key: m[2], Msg: m[3]}
		}
		return &Error{File: path, Msg: err.Error()}
	}
	// A misspelt key silently ignored is a setting the operator believes in but does not have.
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		return &Error{File: path, Line: LineOf(src, k), Key: k.String(), Msg: "unknown key"}
	}
	return nil
}

// Locate fills in the file and line of a validation *Error (found by its dotted key in src);
// other errors pass through unchanged.
func Locate(err error, path string, src []byte) error {
	var ve *Error
	if errors.As(err, &ve) {
		ve.File = path
		ve.Line = LineOf(src, strings.Split(ve.Key, "."))
	}
	return err
}

// ResolvePath is the one rule for file names in config files, the server's and the client
// tools': "~/" is the home directory, a relative path is relative to the directory of the
// config file (base), so that the same file means the same files whatever the working
// directory of whoever runs petrel (systemd, a cron job, the management commands).
func ResolvePath(p, base string) (string, error) {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("%s: no home directory to expand ~/ in: %v", p, err)
		}
		return filepath.Join(home, rest), nil
	}
	if !filepath.IsAbs(p) {
		return filepath.Join(base, p), nil
	}
	return filepath.Clean(p), nil
}

var typeErr = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]+)"\): (.*)$`)

// Validate checks a configuration built in code (the development instance, tests).
func (c *Config) Validate() error { return c.validate() }

func (c *Config) validate() error {
	bad := func(key, format string, args ...any) error {
		return &Error{File: c.File, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if c.Hostname == "" {
		return bad("hostname", "must not be empty")
	}
	if err := c.validateSubmissionFilter(); err != nil {
		return err
	}
	switch {
	case c.Pull.Check.Duration <= 0:
		return bad("pull.check", "must be positive")
	case c.Pull.Workers < 1:
		return bad("pull.workers", "must be at least 1")
	case c.Pull.Timeout.Duration < time.Second:
		return bad("pull.timeout", "must be at least 1s")
	}
	if err := c.validateDoor(); err != nil {
		return err
	}
	if err := c.validateMailAuth(); err != nil {
		return err
	}
	if err := c.validateJunk(); err != nil {
		return err
	}
	switch {
	case c.ACME.Enabled && c.TLS.Cert != "":
		return bad("tls.cert", "set either tls.cert and tls.key or acme.enabled, not both")
	case c.ACME.Enabled:
		if c.ACME.Challenge != "" && c.ACME.Challenge != "tls-alpn-01" && c.ACME.Challenge != "http-01" {
			return bad("acme.challenge", "%q is neither \"tls-alpn-01\" nor \"http-01\"", c.ACME.Challenge)
		}
		if c.ACME.Contact != "" && !strings.Contains(c.ACME.Contact, "@") {
			return bad("acme.contact", "%q is not an e-mail address", c.ACME.Contact)
		}
	case !c.Dev && (c.TLS.Cert == "" || c.TLS.Key == ""):
		return bad("tls.cert", "tls.cert and tls.key are required (or acme.enabled): every listener offers TLS")
	}
	for key, addrs := range map[string][]string{
		"smtp.listen": c.SMTP.Listen, "smtp.submission": c.SMTP.Submission,
		"smtp.submissions": c.SMTP.Submissions, "pop3.listen": c.POP3.Listen,
		"pop3.listen_tls": c.POP3.ListenTLS, "imap.listen": c.IMAP.Listen,
		"imap.listen_tls": c.IMAP.ListenTLS, "http.listen": c.HTTP.Listen,
		"http.listen_tls": c.HTTP.ListenTLS, "managesieve.listen": c.ManageSieve.Listen,
	} {
		for _, a := range addrs {
			if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
				return bad(key, "%q is not host:port", a)
			}
		}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "must be \"text\" or \"json\", not %q", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	switch c.SMTP.SenderPolicy {
	case "own", "any":
	default:
		return bad("smtp.sender_policy", "must be \"own\" or \"any\", not %q", c.SMTP.SenderPolicy)
	}
	if c.SMTP.MaxMessageBytes < 1024 {
		return bad("smtp.max_message_bytes", "must be at least 1024")
	}
	if c.Quota.Storage < 0 {
		return bad("quota.storage", "must be 0 (no limit) or a number of bytes")
	}
	if c.Quota.Messages < 0 {
		return bad("quota.messages", "must be 0 (no limit) or a number of messages")
	}
	if err := c.Store.validate(bad); err != nil {
		return err
	}
	if c.SMTP.MaxRecipients < 1 {
		return bad("smtp.max_recipients", "must be at least 1")
	}
	// RFC 5321 §4.5.3.1.4: a command line is up to 512 octets; §4.5.3.1.6: text lines 1000.
	if c.SMTP.MaxLineLength < 1000 {
		return bad("smtp.max_line_length", "must be at least 1000 (RFC 5321 §4.5.3.1.6)")
	}
	if c.POP3.MaxLineLength < 255 {
		return bad("pop3.max_line_length", "must be at least 255 (RFC 2449 §4)")
	}
	if e := c.POP3.Expire; e != "" && e != "NEVER" {
		if n, err := strconv.Atoi(e); err != nil || n < 0 {
			return bad("pop3.expire", "must be \"\", \"NEVER\" or a number of days, not %q", e)
		}
	}
	if c.POP3.LoginDelay < 0 {
		return bad("pop3.login_delay", "must not be negative")
	}
	for key, d := range map[string]Duration{
		"smtp.read_timeout": c.SMTP.ReadTimeout, "smtp.data_timeout": c.SMTP.DataTimeout,
		"pop3.idle_timeout": c.POP3.IdleTimeout, "pop3.command_timeout": c.POP3.CommandTimeout,
		"limits.login_idle_timeout": c.Limits.LoginIdleTimeout, "limits.login_timeout": c.Limits.LoginTimeout,
		"imap.idle_timeout": c.IMAP.IdleTimeout, "imap.command_timeout": c.IMAP.CommandTimeout,
		"http.read_header_timeout": c.HTTP.ReadHeaderTimeout, "http.read_timeout": c.HTTP.ReadTimeout,
		"http.write_timeout": c.HTTP.WriteTimeout, "http.idle_timeout": c.HTTP.IdleTimeout,
		"managesieve.idle_timeout": c.ManageSieve.IdleTimeout, "managesieve.command_timeout": c.ManageSieve.CommandTimeout,
	} {
		if d.Duration <= 0 {
			return bad(key, "must be positive")
		}
	}
	if c.ManageSieve.MaxScripts < 1 {
		return bad("managesieve.max_scripts", "must be at least 1")
	}
	if c.SMTP.DataMinRate < 1 {
		return bad("smtp.data_min_rate", "must be at least 1 (bytes per second)")
	}
	// RFC 1939 §3: the autologout timer must be at least 10 minutes.
	if c.POP3.IdleTimeout.Duration < 10*time.Minute {
		return bad("pop3.idle_timeout", "must be at least 10m (RFC 1939 §3)")
	}
	// RFC 9051 §5.4: the autologout timer must be at least 30 minutes.
	if c.IMAP.IdleTimeout.Duration < 30*time.Minute {
		return bad("imap.idle_timeout", "must be at least 30m (RFC 9051 §5.4)")
	}
	// RFC 7162 §4 asks servers to take command lines of at least 8192 octets.
	if c.IMAP.MaxCommandBytes < 8192 {
		return bad("imap.max_command_bytes", "must be at least 8192 (RFC 7162 §4)")
	}
	if c.IMAP.AppendLimit < 1024 {
		return bad("imap.append_limit", "must be at least 1024")
	}
	if c.IMAP.MaxAccountSessions < 1 {
		return bad("imap.max_account_sessions", "must be at least 1")
	}
	if c.IMAP.MaxNotifyPending < 1 {
		return bad("imap.max_notify_pending", "must be at least 1")
	}
	if c.HTTP.MaxHeaderBytes < 4096 {
		return bad("http.max_header_bytes", "must be at least 4096")
	}
	if c.HTTP.MaxUpload < 1<<16 {
		return bad("http.max_upload", "must be at least 65536")
	}
	if c.HTTP.HSTSMaxAge < 0 {
		return bad("http.hsts_max_age", "must not be negative")
	}
	for _, n := range c.HTTP.MetricsAllow {
		if _, err := netip.ParsePrefix(n); err != nil {
			return bad("http.metrics_allow", "%q is not a network such as 192.0.2.0/24", n)
		}
	}
	switch c.HTTP.MTASTSMode {
	case "testing", "enforce", "none", "off":
	default:
		return bad("http.mta_sts_mode", "must be testing, enforce, none or off, not %q", c.HTTP.MTASTSMode)
	}
	// RFC 8461 §3.2: max_age is at most 31557600 seconds; a day is the least that makes sense.
	if c.HTTP.MTASTSMaxAge < 86400 || c.HTTP.MTASTSMaxAge > 31557600 {
		return bad("http.mta_sts_max_age", "must be between 86400 (a day) and 31557600 (RFC 8461 §3.2)")
	}
	if c.Limits.MaxConnections < 1 || c.Limits.MaxConnectionsPerIP < 1 {
		return bad("limits.max_connections", "limits.max_connections and max_connections_per_ip must be at least 1")
	}
	if c.Limits.MaxAuthFailures < 1 {
		return bad("limits.max_auth_failures", "must be at least 1")
	}
	return c.Outbound.validate(bad)
}

func (o *Outbound) validate(bad func(key, format string, args ...any) error) error {
	for key, a := range map[string]string{"outbound.resolver": o.Resolver, "outbound.smart_host": o.SmartHost} {
		if a == "" {
			continue
		}
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			return bad(key, "%q is not host:port", a)
		}
	}
	if o.Port < 1 || o.Port > 65535 {
		return bad("outbound.port", "must be a port number, not %d", o.Port)
	}
	for key, d := range map[string]Duration{"outbound.retry_first": o.RetryFirst, "outbound.retry_max": o.RetryMax,
		"outbound.expire": o.Expire, "outbound.attempt_timeout": o.AttemptTimeout} {
		if d.Duration <= 0 {
			return bad(key, "must be positive")
		}
	}
	if o.DelayWarning.Duration < 0 {
		return bad("outbound.delay_warning", "must not be negative")
	}
	if o.Workers < 1 || o.PerDomain < 1 || o.MessagesPerConnection < 1 {
		return bad("outbound.workers", "outbound.workers, per_domain and messages_per_connection must be at least 1")
	}
	if o.SmartHostUser != "" && o.SmartHost == "" {
		return bad("outbound.smart_host_user", "needs outbound.smart_host")
	}
	if o.ForwardPerAliasHour < 0 {
		return bad("outbound.forward_per_alias_hour", "must not be negative")
	}
	return nil
}

// LineOf finds the line where a dotted key is set, so that validation errors can point at it.
// It understands [table] headers and key = value lines, which is all our config files use
// (the server's and the client tools').
func LineOf(src []byte, key []string) int {
	if len(key) == 0 {
		return 0
	}
	table, leaf := strings.Join(key[:len(key)-1], "."), key[len(key)-1]
	cur := ""
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			cur = strings.TrimSpace(strings.Trim(line, "[]"))
			if cur == strings.Join(key, ".") {
				return n
			}
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.Trim(strings.TrimSpace(k), `"`)
		if (cur == table && k == leaf) || (cur == "" && k == strings.Join(key, ".")) {
			return n
		}
	}
	return 0
}

func (s *Store) validate(bad func(key, format string, args ...any) error) error {
	if s.BackupRate < 0 {
		return bad("store.backup_rate", "must be 0 (no limit) or MB/s")
	}
	switch s.Backend {
	case "sqlite":
		if s.DSN != "" || s.PasswordFile != "" {
			return bad("store.dsn", "is for backend = \"postgres\"")
		}
		return nil
	case "postgres":
	default:
		return bad("store.backend", "must be \"sqlite\" or \"postgres\", not %q", s.Backend)
	}
	if s.DSN == "" {
		return bad("store.dsn", "is required with backend = \"postgres\"")
	}
	if dsnHasPassword(s.DSN) {
		return bad("store.dsn", "must not hold the password: use store.password_file or PGPASSWORD")
	}
	if s.PoolSize < 0 {
		return bad("store.pool_size", "must be 0 (the default) or a number of connections")
	}
	return nil
}

// dsnHasPassword reports whether a libpq connection string (URL or key=value) carries a
// password.
func dsnHasPassword(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return strings.Contains(dsn, "password")
		}
		_, set := u.User.Password()
		return set || u.Query().Has("password")
	}
	for _, f := range strings.Fields(dsn) {
		if k, _, ok := strings.Cut(f, "="); ok && strings.TrimSpace(k) == "password" {
			return true
		}
	}
	return strings.Contains(dsn, "password =")
}
