// Package clientconf is the configuration of Petrel's client tools, `petrel fetch` and
// `petrel send`: a TOML file (default ~/.config/petrel/client.toml) with one table per
// account. It follows the style of the server's config: plain data, every key documented with
// its default, loading is defaults → file → validation, and errors name the file, the line and
// the key (config.Error).
//
// Passwords never live in the file or on the command line: each account names a command that
// prints the password (password_command) or an environment variable (password_env).
//
// `petrel fetch` downloads from one source per account: a POP3 maildrop ([pop3]) or an IMAP
// folder ([imap]); both write the same kind of local archive (the keys of Local).
//
// Example:
//
//	default_account = "home"
//
//	[accounts.home]
//	user = "alice@example.org"
//	password_command = "pass show mail/alice"
//
//	[accounts.home.pop3]
//	host = "mail.example.org"   # port 995, implicit TLS by default
//	archive = "~/Mail/home"      # a Maildir (created if missing)
//	mode = "keep-days"
//	keep_days = 14
//
//	[accounts.home.smtp]
//	host = "mail.example.org"   # port 587 with STARTTLS by default
//
//	[accounts.work]
//	user = "alice"
//	password_env = "WORK_PASSWORD"
//
//	[accounts.work.imap]
//	host = "imap.work.example"  # port 993, implicit TLS by default
//	folder = "INBOX"
//	archive = "~/Mail/work"
//	mode = "keep"
package clientconf

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"petrel/internal/config"
)

// Config is the whole client configuration.
type Config struct {
	// default_account: the account `petrel send` uses without --account. Default: the only
	// account with an [smtp] table if there is exactly one.
	DefaultAccount string `toml:"default_account"`
	// outbox: directory of the queue of `petrel send`, one subdirectory per account.
	// Default: $XDG_DATA_HOME/petrel/outbox (~/.local/share/petrel/outbox).
	Outbox string `toml:"outbox"`
	// accounts: one table per account, [accounts.NAME].
	Accounts map[string]*Account `toml:"accounts"`

	File string `toml:"-"` // where the config was read from
}

// Account is one mail account: credentials plus a source for `petrel fetch` (POP3 or IMAP)
// and/or an SMTP submission server.
type Account struct {
	Name string `toml:"-"` // the NAME of [accounts.NAME]

	// user: the login name. Required.
	User string `toml:"user"`
	// password_command: a shell command (sh -c) whose first line of output is the password.
	// password_env: the name of an environment variable holding the password.
	// Exactly one of the two is required.
	PasswordCommand string `toml:"password_command"`
	PasswordEnv     string `toml:"password_env"`
	// token_command: a shell command whose first line of output is an OAuth 2.0 access token,
	// for users who keep their own helper; it runs before each login, and once more when the
	// server refuses the token. Instead of a password; not with [oauth].
	TokenCommand string `toml:"token_command"`
	// [accounts.NAME.oauth]: log in with OAuth 2.0 tokens that `petrel auth login NAME`
	// obtains and petrel refreshes by itself. Instead of a password; not with token_command.
	OAuth *OAuth `toml:"oauth"`
	// timeout: deadline of each network read and write, and of the password command.
	// Default 1m.
	Timeout config.Duration `toml:"timeout"`

	POP3 *POP3 `toml:"pop3"` // [accounts.NAME.pop3]: where `petrel fetch` downloads from
	IMAP *IMAP `toml:"imap"` // [accounts.NAME.imap]: the same from an IMAP folder (not with pop3)
	SMTP *SMTP `toml:"smtp"` // [accounts.NAME.smtp]: where `petrel send` submits to
}

// Endpoint is a server and how to reach it safely; POP3, IMAP and SMTP tables share these keys.
type Endpoint struct {
	// host: the server's name, also checked against its certificate. Required.
	Host string `toml:"host"`
	// port: default 995 (POP3, tls), 110 (POP3, starttls/plain), 993 (IMAP, tls),
	// 143 (IMAP, starttls/plain), 465 (SMTP, tls), 587 (SMTP, starttls/plain).
	Port int `toml:"port"`
	// tls: "tls" (implicit TLS; "implicit" is a synonym), "starttls" (STLS/STARTTLS, refused
	// if the server does not offer it) or "plain" (no TLS; needs allow_plaintext). Default
	// "tls" for POP3 and IMAP, "starttls" for SMTP.
	TLS string `toml:"tls"`
	// allow_plaintext: permit tls = "plain" and cleartext passwords without TLS. Default false.
	AllowPlaintext bool `toml:"allow_plaintext"`
	// ca_file: PEM file of the CA certificates to trust instead of the system's (a private CA).
	// "~/" is the home directory; a relative path is relative to the config file's directory.
	CAFile string `toml:"ca_file"`
	// fingerprint: SHA-256 of the server certificate (hex, colons allowed, as printed by
	// `openssl x509 -noout -fingerprint -sha256`). When set, exactly that certificate is
	// accepted and the CA chain and name are not checked (for self-signed servers).
	Fingerprint string `toml:"fingerprint"`
	// auth: the login mechanism; "" (default) picks the best offered: SCRAM-SHA-256, then
	// PLAIN over TLS (POP3 also APOP and USER, IMAP also LOGIN). Values: "scram-sha-256",
	// "plain", for POP3 "apop", "user", for IMAP "login". Accounts with OAuth tokens
	// (token_command or [oauth]) use "oauthbearer" (RFC 7628) or "xoauth2"; "" picks
	// OAUTHBEARER when offered, else XOAUTH2.
	Auth string `toml:"auth"`
}

// POP3 is a POP3 source of `petrel fetch`.
type POP3 struct {
	Endpoint
	Local
}

// IMAP is an IMAP source of `petrel fetch`: one folder downloaded into the archive.
type IMAP struct {
	Endpoint
	Local
	// folder: the mailbox to download. Default "INBOX".
	Folder string `toml:"folder"`
}

// Local is the local side of a fetch source: the archive and when messages leave the server.
type Local struct {
	// archive: the local mailbox messages are written to. Required. "~/" is the home
	// directory; a relative path is relative to the config file's directory.
	Archive string `toml:"archive"`
	// format: "maildir" (default) or "mbox" (mboxrd).
	Format string `toml:"format"`
	// mode: "delete" (default: delete from the server once safely archived), "keep" (never
	// delete; IMAP: the folder is opened read-only) or "keep-days" (delete keep_days after
	// the first download).
	Mode string `toml:"mode"`
	// keep_days: days a message stays on the server in mode "keep-days". Required there, >= 1.
	KeepDays int `toml:"keep_days"`
	// state: the file remembering which messages were downloaded. Default: next to the
	// archive, ".ARCHIVE-NAME.petrel-fetch.ACCOUNT" (IMAP: ".ARCHIVE-NAME.petrel-fetch-imap.ACCOUNT").
	State string `toml:"state"`
}

// SMTP is the submission server of `petrel send`.
type SMTP struct {
	Endpoint
	// from: the envelope sender when -f is not given. Default: user if it is an address,
	// else the From header of the message.
	From string `toml:"from"`
}

// OAuth is how an account gets OAuth 2.0 tokens. A provider preset fills the endpoints and
// scopes; each key overrides it. The client ID (and secret, for providers that want one even
// from installed apps) come from the app the user or distributor registered.
type OAuth struct {
	// provider: "google", "microsoft" or "generic" (every URL given here). Required.
	Provider string `toml:"provider"`
	// client_id: the registered app's ID. Required.
	ClientID string `toml:"client_id"`
	// client_secret: the app's secret, if the provider issued one (Google does, for installed
	// apps, and says it is not secret). Default: none.
	ClientSecret string `toml:"client_secret"`
	// auth_url, token_url, device_url: the authorization, token and device authorization
	// (RFC 8628) endpoints. Default: the provider's.
	AuthURL   string `toml:"auth_url"`
	TokenURL  string `toml:"token_url"`
	DeviceURL string `toml:"device_url"`
	// scopes: the scopes asked for. Default: the provider's mail scopes.
	Scopes []string `toml:"scopes"`
	// flow: what `petrel auth login` runs: "browser" (authorization code with PKCE on a
	// loopback redirect, RFC 8252) or "device" (RFC 8628: a code to type on another
	// device). Default: "device" when a device_url is known, else "browser".
	Flow string `toml:"flow"`
	// token_file: where the refresh token is kept (mode 0600). Default:
	// $XDG_DATA_HOME/petrel/tokens/NAME.json, beside the outbox.
	TokenFile string `toml:"token_file"`
}

// Provider presets: endpoints and mail scopes of the big providers.
var providers = map[string]OAuth{
	"google": {
		// Google's device flow does not grant the mail scope, hence no device_url.
		AuthURL:  "https://accounts.google.com/o/oauth2/v2/auth",
		TokenURL: "https://oauth2.googleapis.com/token",
		Scopes:   []string{"https://mail.google.com/"},
	},
	"microsoft": {
		AuthURL:   "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
		TokenURL:  "https://login.microsoftonline.com/common/oauth2/v2.0/token",
		DeviceURL: "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
		Scopes: []string{"offline_access", "https://outlook.office.com/IMAP.AccessAsUser.All",
			"https://outlook.office.com/POP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send"},
	},
	"generic": {},
}

// finish applies the provider's preset and validates; name is the account's.
func (o *OAuth) finish(k, name, tokenDir, base string, bad func(key, format string, args ...any) error) error {
	p, ok := providers[o.Provider]
	if !ok {
		return bad(k+".provider", "must be \"google\", \"microsoft\" or \"generic\", not %q", o.Provider)
	}
	if o.ClientID == "" {
		return bad(k+".client_id", "required: the ID of the app registered with the provider")
	}
	o.AuthURL = cmp.Or(o.AuthURL, p.AuthURL)
	o.TokenURL = cmp.Or(o.TokenURL, p.TokenURL)
	o.DeviceURL = cmp.Or(o.DeviceURL, p.DeviceURL)
	if len(o.Scopes) == 0 {
		o.Scopes = p.Scopes
	}
	if o.TokenURL == "" {
		return bad(k+".token_url", "required with provider = %q", o.Provider)
	}
	for key, u := range map[string]string{"auth_url": o.AuthURL, "token_url": o.TokenURL, "device_url": o.DeviceURL} {
		if u == "" {
			continue
		}
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" || (pu.Scheme != "https" && !(pu.Scheme == "http" && isLoopback(pu.Hostname()))) {
			return bad(k+"."+key, "must be an https URL (http only on loopback)")
		}
	}
	if o.Flow == "" {
		o.Flow = "browser"
		if o.DeviceURL != "" {
			o.Flow = "device"
		}
	}
	switch o.Flow {
	case "browser":
		if o.AuthURL == "" {
			return bad(k+".auth_url", "required for flow = \"browser\"")
		}
	case "device":
		if o.DeviceURL == "" {
			return bad(k+".device_url", "required for flow = \"device\"")
		}
	default:
		return bad(k+".flow", "must be \"browser\" or \"device\", not %q", o.Flow)
	}
	if o.TokenFile == "" {
		o.TokenFile = filepath.Join(tokenDir, name+".json")
	} else {
		var err error
		if o.TokenFile, err = config.ResolvePath(o.TokenFile, base); err != nil {
			return bad(k+".token_file", "%v", err)
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// UsesToken reports whether the account logs in with OAuth 2.0 tokens instead of a password.
func (a *Account) UsesToken() bool { return a.TokenCommand != "" || a.OAuth != nil }

// Fetch modes.
const (
	ModeDelete   = "delete"
	ModeKeep     = "keep"
	ModeKeepDays = "keep-days"
)

// DefaultTimeout is the default of timeout.
const DefaultTimeout = time.Minute

// DefaultPath returns ~/.config/petrel/client.toml (honouring XDG_CONFIG_HOME).
func DefaultPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "petrel", "client.toml"), nil
}

// Load reads and validates a config file.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, src)
}

// Parse is Load on bytes already read; path names the file in errors and anchors relative paths.
func Parse(path string, src []byte) (*Config, error) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs // relative paths in the file are relative to its directory, whatever the cwd
	}
	c := &Config{File: path}
	if err := config.DecodeTOML(path, src, c); err != nil {
		return nil, err
	}
	if err := c.finish(); err != nil {
		return nil, config.Locate(err, path, src)
	}
	return c, nil
}

// finish applies defaults and validates.
func (c *Config) finish() error {
	bad := func(key, format string, args ...any) error {
		return &config.Error{File: c.File, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if len(c.Accounts) == 0 {
		return bad("accounts", "no account configured")
	}
	base := filepath.Dir(c.File)
	if c.Outbox == "" {
		dir := os.Getenv("XDG_DATA_HOME")
		if dir == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return bad("outbox", "no home directory to put the default outbox in: %v", err)
			}
			dir = filepath.Join(home, ".local", "share")
		}
		c.Outbox = filepath.Join(dir, "petrel", "outbox")
	} else {
		p, err := config.ResolvePath(c.Outbox, base)
		if err != nil {
			return bad("outbox", "%v", err)
		}
		c.Outbox = p
	}
	for name, a := range c.Accounts {
		key := "accounts." + name
		if !validName.MatchString(name) {
			return bad(key, "account names are letters, digits, '.', '_' and '-'")
		}
		if a == nil {
			return bad(key, "empty account")
		}
		a.Name = name
		if a.User == "" {
			return bad(key+".user", "required")
		}
		n := 0
		for _, set := range []bool{a.PasswordCommand != "", a.PasswordEnv != "", a.TokenCommand != "", a.OAuth != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return bad(key+".password_command", "exactly one of password_command, password_env, token_command and an [oauth] table is required")
		}
		if a.OAuth != nil {
			if err := a.OAuth.finish(key+".oauth", name, filepath.Join(filepath.Dir(c.Outbox), "tokens"), base, bad); err != nil {
				return err
			}
		}
		oauthMechs := []string{"", "oauthbearer", "xoauth2"}
		if a.Timeout.Duration == 0 {
			a.Timeout.Duration = DefaultTimeout
		}
		if a.Timeout.Duration < 0 {
			return bad(key+".timeout", "must be positive")
		}
		if a.POP3 == nil && a.IMAP == nil && a.SMTP == nil {
			return bad(key, "needs a [%s.pop3], [%s.imap] or [%s.smtp] table", key, key, key)
		}
		if a.POP3 != nil && a.IMAP != nil {
			return bad(key+".imap", "an account fetches from one source: [%s.pop3] or [%s.imap], not both", key, key)
		}
		if p := a.POP3; p != nil {
			k := key + ".pop3"
			auths := []string{"", "scram-sha-256", "plain", "apop", "user"}
			if a.UsesToken() {
				auths = oauthMechs
			}
			if err := p.Endpoint.finish(k, base, "tls", 995, 110, auths, bad); err != nil {
				return err
			}
			if err := p.Local.finish(k, ".petrel-fetch."+name, base, bad); err != nil {
				return err
			}
		}
		if m := a.IMAP; m != nil {
			k := key + ".imap"
			auths := []string{"", "scram-sha-256", "plain", "login"}
			if a.UsesToken() {
				auths = oauthMechs
			}
			if err := m.Endpoint.finish(k, base, "tls", 993, 143, auths, bad); err != nil {
				return err
			}
			// A different default state file than POP3's: switching an account from [pop3] to
			// [imap] starts a new state instead of failing on the old one's server name.
			if err := m.Local.finish(k, ".petrel-fetch-imap."+name, base, bad); err != nil {
				return err
			}
			if m.Folder == "" {
				m.Folder = "INBOX"
			}
		}
		if s := a.SMTP; s != nil {
			auths := []string{"", "scram-sha-256", "plain"}
			if a.UsesToken() {
				auths = oauthMechs
			}
			if err := s.Endpoint.finish(key+".smtp", base, "starttls", 465, 587, auths, bad); err != nil {
				return err
			}
			if s.From == "" && strings.Contains(a.User, "@") {
				s.From = a.User
			}
		}
	}
	if c.DefaultAccount != "" {
		if a := c.Accounts[c.DefaultAccount]; a == nil {
			return bad("default_account", "no account %q", c.DefaultAccount)
		}
	}
	return nil
}

// finish validates the archive keys of table key and applies their defaults; the default state
// file is named "." + the archive's name + stateSuffix, next to the archive.
func (l *Local) finish(k, stateSuffix, base string, bad func(key, format string, args ...any) error) error {
	if l.Archive == "" {
		return bad(k+".archive", "required")
	}
	var err error
	if l.Archive, err = config.ResolvePath(l.Archive, base); err != nil {
		return bad(k+".archive", "%v", err)
	}
	switch l.Format {
	case "":
		l.Format = "maildir"
	case "maildir", "mbox":
	default:
		return bad(k+".format", "must be \"maildir\" or \"mbox\", not %q", l.Format)
	}
	switch l.Mode {
	case "":
		l.Mode = ModeDelete
	case ModeDelete, ModeKeep:
		if l.KeepDays != 0 {
			return bad(k+".keep_days", "only meaningful with mode = \"keep-days\"")
		}
	case ModeKeepDays:
		if l.KeepDays < 1 {
			return bad(k+".keep_days", "must be at least 1 with mode = \"keep-days\"")
		}
	default:
		return bad(k+".mode", "must be \"delete\", \"keep\" or \"keep-days\", not %q", l.Mode)
	}
	if l.State == "" {
		l.State = filepath.Join(filepath.Dir(l.Archive), "."+filepath.Base(l.Archive)+stateSuffix)
	} else if l.State, err = config.ResolvePath(l.State, base); err != nil {
		return bad(k+".state", "%v", err)
	}
	return nil
}

var validName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

func (e *Endpoint) finish(key, base, defTLS string, tlsPort, plainPort int, auths []string,
	bad func(key, format string, args ...any) error) error {
	if e.Host == "" {
		return bad(key+".host", "required")
	}
	if e.TLS == "" {
		e.TLS = defTLS
	}
	if e.TLS == "implicit" {
		e.TLS = "tls"
	}
	switch e.TLS {
	case "tls":
		if e.Port == 0 {
			e.Port = tlsPort
		}
	case "starttls":
		if e.Port == 0 {
			e.Port = plainPort
		}
	case "plain":
		if !e.AllowPlaintext {
			return bad(key+".tls", "\"plain\" sends the password and the mail unprotected; set allow_plaintext = true to really want that")
		}
		if e.Port == 0 {
			e.Port = plainPort
		}
	default:
		return bad(key+".tls", "must be \"tls\" (or \"implicit\"), \"starttls\" or \"plain\", not %q", e.TLS)
	}
	if e.Port < 1 || e.Port > 65535 {
		return bad(key+".port", "must be 1-65535")
	}
	e.Auth = strings.ToLower(e.Auth)
	found := false
	for _, a := range auths {
		found = found || a == e.Auth
	}
	if !found {
		return bad(key+".auth", "must be one of %s", strings.Join(auths[1:], ", "))
	}
	if e.Fingerprint != "" {
		if _, err := e.fingerprint(); err != nil {
			return bad(key+".fingerprint", "%v", err)
		}
	}
	if e.CAFile != "" {
		var err error
		if e.CAFile, err = config.ResolvePath(e.CAFile, base); err != nil {
			return bad(key+".ca_file", "%v", err)
		}
		if _, err := e.caPool(); err != nil {
			return bad(key+".ca_file", "%v", err)
		}
	}
	return nil
}

// Addr is host:port.
func (e *Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

func (e *Endpoint) fingerprint() ([]byte, error) {
	h := strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimPrefix(e.Fingerprint, "sha256:")))
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return nil, errors.New("must be the 64 hex digits of a SHA-256 digest")
	}
	return b, nil
}

func (e *Endpoint) caPool() (*x509.CertPool, error) {
	pem, err := os.ReadFile(e.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no PEM certificate in the file")
	}
	return pool, nil
}

// TLSConfig is the TLS client policy for this server: the system roots (or ca_file) and the
// host name are verified, unless a fingerprint pins the exact certificate.
func (e *Endpoint) TLSConfig() (*tls.Config, error) {
	c := &tls.Config{ServerName: e.Host, MinVersion: tls.VersionTLS12}
	if e.CAFile != "" {
		pool, err := e.caPool()
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if e.Fingerprint != "" {
		want, err := e.fingerprint()
		if err != nil {
			return nil, err
		}
		// Chain verification is replaced, not skipped: VerifyConnection runs for every
		// handshake and accepts exactly the pinned certificate.
		c.InsecureSkipVerify = true
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: server sent no certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(got[:], want) != 1 {
				return fmt.Errorf("tls: certificate fingerprint %s does not match the pinned one", hex.EncodeToString(got[:]))
			}
			return nil
		}
	}
	return c, nil
}

// Password returns the account's password from its environment variable or by running its
// command (sh -c, bounded by the account's timeout); the first line of output, without its
// line ending, is the password.
func (a *Account) Password(ctx context.Context) (string, error) {
	if a.PasswordEnv != "" {
		pw, ok := os.LookupEnv(a.PasswordEnv)
		if !ok || pw == "" {
			return "", fmt.Errorf("account %s: environment variable %s is not set", a.Name, a.PasswordEnv)
		}
		return pw, nil
	}
	if a.PasswordCommand == "" {
		return "", fmt.Errorf("account %s logs in with OAuth tokens, not a password", a.Name)
	}
	return a.firstLine(ctx, "password_command", a.PasswordCommand)
}

// CommandToken runs token_command and returns the access token it prints.
func (a *Account) CommandToken(ctx context.Context) (string, error) {
	return a.firstLine(ctx, "token_command", a.TokenCommand)
}

// firstLine runs command (sh -c, bounded by the account's timeout) and returns the first line
// of its output without the line ending.
func (a *Account) firstLine(ctx context.Context, key, command string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, a.Timeout.Duration)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdin = os.Stdin // pass, gpg and friends may prompt
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("account %s: %s: %v: %s", a.Name, key, err, strings.TrimSpace(stderr.String()))
	}
	line, _, _ := strings.Cut(string(out), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("account %s: %s printed nothing", a.Name, key)
	}
	return line, nil
}

// Fetches reports whether `petrel fetch` downloads this account (it has a [pop3] or an [imap]
// table).
func (a *Account) Fetches() bool { return a.POP3 != nil || a.IMAP != nil }

// Names returns the account names in sorted order.
func (c *Config) Names() []string {
	names := make([]string, 0, len(c.Accounts))
	for n := range c.Accounts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// SendAccount picks the account for `petrel send`: name if given, else default_account, else
// the only account with an [smtp] table.
func (c *Config) SendAccount(name string) (*Account, error) {
	if name == "" {
		name = c.DefaultAccount
	}
	if name != "" {
		a := c.Accounts[name]
		if a == nil {
			return nil, fmt.Errorf("no account %q in %s", name, c.File)
		}
		if a.SMTP == nil {
			return nil, fmt.Errorf("account %q has no [accounts.%s.smtp] table", name, name)
		}
		return a, nil
	}
	var found []*Account
	for _, n := range c.Names() {
		if c.Accounts[n].SMTP != nil {
			found = append(found, c.Accounts[n])
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no account with an [smtp] table in %s", c.File)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("several accounts can send: choose one with --account or default_account")
}
