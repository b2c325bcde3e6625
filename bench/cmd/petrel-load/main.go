// Command petrel-load generates SMTP and POP3 load against a mail server and
// reports throughput and latency percentiles. It works against any server
// (Petrel, Postfix+Dovecot, ...): it speaks only the protocols.
//
// Usage:
//
//	petrel-load SCENARIO [flags]        (or: petrel-load -scenario SCENARIO [flags])
//
// Scenarios: smtp, pop3, wait, idle, imap-fetch, imap-idle, imap-mixed, imap-append,
// imap-search, sink.
// "petrel-load SCENARIO -h" lists the flags of one; bench/README.md has
// examples.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"petrel/bench/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK     = 0
	exitErrors = 1 // the run counted errors (and -allow-errors was not given)
	exitUsage  = 2
)

// scenario is one subcommand: its help and a setup that registers its flags
// and returns what runs it once they are parsed.
type scenario struct {
	name  string
	help  string
	setup func(fs *flag.FlagSet, c *common) func(context.Context) (*load.Result, error)
}

var scenarios = []scenario{
	{"smtp", "send -n messages of -size bytes over -c connections; with -wait-pop3, also measure end-to-end delivery", setupSMTP},
	{"pop3", "-c clients log in, STAT, LIST, RETR every message (checked against LIST), optionally DELE, QUIT", setupPOP3},
	{"wait", "poll STAT over POP3 until -expect messages are visible in the accounts", setupWait},
	{"idle", "hold -n POP3 connections open for -hold; with -pid, report server memory per connection", setupIdle},
	{"imap-fetch", "-c clients log in, SELECT INBOX, UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[]) checked, LOGOUT", setupIMAPFetch},
	{"imap-idle", "hold -n IMAP sessions logged in and in IDLE for -hold; with -pid, report server memory per connection", setupIMAPIdle},
	{"imap-mixed", "-c IMAP sessions run SELECT, header FETCH, STORE, SEARCH, APPEND, EXPUNGE; reports commands/s", setupIMAPMixed},
	{"imap-append", "fill a mailbox with the search corpus (-n messages of words, the same for every server): -c sessions, MULTIAPPEND of -batch", setupIMAPAppend},
	{"imap-search", "-c sessions with a mailbox selected send UID SEARCH TEXT for -word (or the corpus word of -rank) in turn; reports latency and hits", setupIMAPSearch},
	{"dns", "answer A, MX and TXT questions from -record NAME TYPE VALUE (repeatable) on -listen, UDP and TCP, until -timeout or a signal", setupDNS},
	{"sink", "be the far MX of a relay: listen on -listen, accept and count until -expect messages arrived; reports delivered msg/s", setupSink},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: petrel-load SCENARIO [flags]   (or -scenario SCENARIO [flags])")
	fmt.Fprintln(w, "scenarios:")
	for _, s := range scenarios {
		fmt.Fprintf(w, "  %-10s %s\n", s.name, s.help)
	}
	fmt.Fprintln(w, "run \"petrel-load SCENARIO -h\" for its flags")
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// Accept "-scenario X" and "-scenario=X" in front, as well as "X".
	switch {
	case len(args) >= 2 && (args[0] == "-scenario" || args[0] == "--scenario"):
		args = args[1:]
	case len(args) >= 1 && (strings.HasPrefix(args[0], "-scenario=") || strings.HasPrefix(args[0], "--scenario=")):
		_, name, _ := strings.Cut(args[0], "=")
		args = append([]string{name}, args[1:]...)
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		usage(stderr)
		return exitUsage
	}
	var sc *scenario
	for i := range scenarios {
		if scenarios[i].name == args[0] {
			sc = &scenarios[i]
		}
	}
	if sc == nil {
		fmt.Fprintf(stderr, "petrel-load: unknown scenario %q\n", args[0])
		usage(stderr)
		return exitUsage
	}

	fs := flag.NewFlagSet("petrel-load "+sc.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := registerCommon(fs, sc.name)
	runScenario := sc.setup(fs, c)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "petrel-load %s: unexpected argument %q\n", sc.name, fs.Arg(0))
		return exitUsage
	}

	ctx, cancel := context.WithTimeout(ctx, c.overall)
	defer cancel()
	res, err := runScenario(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "petrel-load %s: %v\n", sc.name, err)
		return exitUsage
	}
	if c.json {
		err = res.WriteJSON(stdout)
	} else {
		err = res.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "petrel-load: %v\n", err)
		return exitErrors
	}
	if res.Errors > 0 && !c.allowErrors {
		return exitErrors
	}
	return exitOK
}

// common holds the flags every scenario has.
type common struct {
	scenario    string
	addr        string
	implicitTLS bool
	startTLS    bool
	insecure    bool
	serverName  string
	caFile      string
	opTimeout   time.Duration
	overall     time.Duration
	json        bool
	allowErrors bool
}

func registerCommon(fs *flag.FlagSet, scenario string) *common {
	c := &common{scenario: scenario}
	fs.StringVar(&c.addr, "addr", "", "server `host:port` (default: Petrel's dev port for the protocol and TLS mode, on 127.0.0.1)")
	fs.BoolVar(&c.implicitTLS, "tls", false, "implicit TLS from the first byte")
	switch {
	case scenario == "smtp":
		fs.BoolVar(&c.startTLS, "starttls", false, "upgrade with STARTTLS (RFC 3207)")
	case strings.HasPrefix(scenario, "imap"):
		fs.BoolVar(&c.startTLS, "starttls", false, "upgrade with STARTTLS (RFC 3501 §6.2.1)")
	default:
		fs.BoolVar(&c.startTLS, "stls", false, "upgrade with STLS (RFC 2595)")
	}
	fs.BoolVar(&c.insecure, "insecure", false, "do not verify the server certificate")
	fs.StringVar(&c.serverName, "servername", "", "name to verify the certificate against (default: host of -addr)")
	fs.StringVar(&c.caFile, "cafile", "", "trust the certificates in this PEM `file` (e.g. petrel-data/tls/cert.pem)")
	fs.DurationVar(&c.opTimeout, "op-timeout", 30*time.Second, "bound on each network read, write and dial")
	fs.DurationVar(&c.overall, "timeout", 10*time.Minute, "stop the whole run after this long")
	fs.BoolVar(&c.json, "json", false, "print the result as JSON")
	fs.BoolVar(&c.allowErrors, "allow-errors", false, "exit 0 even if errors were counted")
	return c
}

// Petrel's development ports, used when -addr is not given.
var devPorts = map[string]map[load.TLSMode]string{
	"smtp": {load.PlainText: "2525", load.StartTLS: "2587", load.ImplicitTLS: "2465"},
	"pop3": {load.PlainText: "2110", load.StartTLS: "2110", load.ImplicitTLS: "2995"},
	"imap": {load.PlainText: "2143", load.StartTLS: "2143", load.ImplicitTLS: "2993"},
}

func (c *common) target() (load.Target, error) {
	t := load.Target{Insecure: c.insecure, ServerName: c.serverName, Timeout: c.opTimeout, Addr: c.addr}
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return t, err
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return t, fmt.Errorf("%s: no PEM certificate", c.caFile)
		}
	}
	switch {
	case c.implicitTLS && c.startTLS:
		return t, errors.New("-tls and STARTTLS/STLS exclude each other")
	case c.implicitTLS:
		t.TLS = load.ImplicitTLS
	case c.startTLS:
		t.TLS = load.StartTLS
	}
	if t.Addr == "" {
		proto := "pop3"
		switch {
		case c.scenario == "smtp":
			proto = "smtp"
		case strings.HasPrefix(c.scenario, "imap"):
			proto = "imap"
		}
		t.Addr = net.JoinHostPort("127.0.0.1", devPorts[proto][t.TLS])
	}
	return t, nil
}

// accountFlags selects POP3 accounts: a file, or a pattern and a password.
type accountFlags struct {
	file      string
	user      string
	pass      string
	mailboxes int
}

func registerAccounts(fs *flag.FlagSet) *accountFlags {
	a := &accountFlags{}
	fs.StringVar(&a.file, "users", "", "`file` of user:password lines")
	fs.StringVar(&a.user, "user", "dev@example.test", "user name, or a pattern such as user{n}@example.test (n = 1..-mailboxes)")
	fs.StringVar(&a.pass, "pass", "", "password of -user (all accounts of the pattern share it)")
	fs.IntVar(&a.mailboxes, "mailboxes", 1, "number of accounts of the -user pattern")
	return a
}

func (a *accountFlags) accounts() ([]load.Account, error) {
	if a.file == "" {
		return load.PatternAccounts(a.user, a.pass, a.mailboxes), nil
	}
	f, err := os.Open(a.file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	acc, err := load.ReadAccounts(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.file, err)
	}
	if len(acc) == 0 {
		return nil, fmt.Errorf("%s: no accounts", a.file)
	}
	return acc, nil
}

func setupSMTP(fs *flag.FlagSet, c *common) func(context.Context) (*load.Result, error) {
	var (
		cfg         load.SMTPConfig
		auth, to    string
		waitAddr    string
		waitPass    string
		waitTLS     bool
		waitSTLS    bool
		waitTimeout time.Duration
		poll        time.Duration
		waitConns   int
		dkimKey     string
		dkimSel     string
	)
	fs.IntVar(&cfg.Messages, "n", 1000, "messages to send (with -duration: at most; 0 for no limit)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop starting messages after this long")
	fs.IntVar(&cfg.Size, "size", 10*1024, "message size in bytes")
	fs.IntVar(&cfg.Conns, "c", 4, "concurrent connections")
	fs.IntVar(&cfg.PerConn, "k", 0, "messages per connection before reconnecting (0: never)")
	fs.StringVar(&auth, "auth", "", "AUTH PLAIN as `user:pass`")
	fs.StringVar(&cfg.From, "from", "load@example.test", "sender address")
	fs.StringVar(&to, "to", "dev@example.test", "recipients, comma-separated; {n} in one spreads messages over -mailboxes")
	fs.IntVar(&cfg.Mailboxes, "mailboxes", 1, "mailboxes of a {n} recipient pattern")
	fs.StringVar(&waitAddr, "wait-pop3", "", "after sending, poll the recipients over POP3 at `host:port` until every message is visible")
	fs.StringVar(&waitPass, "pop3-pass", "", "POP3 password of the recipients (default: the -auth password)")
	fs.BoolVar(&waitTLS, "pop3-tls", false, "POP3 with implicit TLS")
	fs.BoolVar(&waitSTLS, "pop3-stls", false, "POP3 with STLS")
	fs.DurationVar(&waitTimeout, "wait-timeout", time.Minute, "how long to wait for delivery after sending")
	fs.DurationVar(&poll, "poll", 200*time.Millisecond, "pause between POP3 polls")
	fs.IntVar(&waitConns, "wait-c", 4, "concurrent POP3 sessions per poll")
	fs.StringVar(&dkimKey, "dkim-key", "", "DKIM-sign every message with this PEM private `file` (RSA or Ed25519; d= is -from's domain)")
	fs.StringVar(&dkimSel, "dkim-selector", "bench", "the s= selector of -dkim-key")
	fs.BoolVar(&cfg.Pipelining, "pipelining", false, "send MAIL, RCPT and DATA in one write (RFC 2920); the server must offer PIPELINING")
	return func(ctx context.Context) (*load.Result, error) {
		t, err := c.target()
		if err != nil {
			return nil, err
		}
		cfg.Target = t
		if dkimKey != "" {
			_, domain, _ := strings.Cut(cfg.From, "@")
			if cfg.Sign, err = load.LoadDKIMKey(dkimKey, domain, dkimSel); err != nil {
				return nil, err
			}
		}
		if auth != "" {
			user, pass, ok := strings.Cut(auth, ":")
			if !ok {
				return nil, errors.New("-auth wants user:pass")
			}
			cfg.Auth = &load.Account{User: user, Pass: pass}
		}
		for _, r := range strings.Split(to, ",") {
			if r = strings.TrimSpace(r); r != "" {
				cfg.To = append(cfg.To, r)
			}
		}
		if waitAddr != "" {
			if waitTLS && waitSTLS {
				return nil, errors.New("-pop3-tls and -pop3-stls exclude each other")
			}
			// The POP3 side shares the SMTP side's certificate settings.
			w := &load.WaitConfig{Target: t, Pass: waitPass, Poll: poll, Timeout: waitTimeout, Conns: waitConns}
			w.Addr, w.TLS = waitAddr, load.PlainText
			if waitTLS {
				w.TLS = load.ImplicitTLS
			} else if waitSTLS {
				w.TLS = load.StartTLS
			}
			if w.Pass == "" && cfg.Auth != nil {
				w.Pass = cfg.Auth.Pass
			}
			cfg.Wait = w
		}
		return load.RunSMTP(ctx, cfg)
	}
}

func setupPOP3(fs *flag.FlagSet, c *common) func(context.Context) (*load.Result, error) {
	var cfg load.POP3Config
	acc := registerAccounts(fs)
	fs.IntVar(&cfg.Clients, "c", 4, "concurrent clients")
	fs.IntVar(&cfg.Sessions, "sessions", 0, "stop after this many logins (0 with no -duration: each account once)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop starting sessions after this long")
	fs.BoolVar(&cfg.Delete, "dele", false, "delete every retrieved message")
	return func(ctx context.Context) (*load.Result, error) {
		var err error
		if cfg.Target, err = c.target(); err != nil {
			return nil, err
		}
		if cfg.Accounts, err = acc.accounts(); err != nil {
			return nil, err
		}
		return load.RunPOP3(ctx, cfg)
	}
}

func setupWait(fs *flag.FlagSet, c *common) func(context.Context) (*load.Result, error) {
	var cfg load.WaitConfig
	acc := registerAccounts(fs)
	fs.Int64Var(&cfg.Expect, "expect", 0, "messages to wait for, summed over the accounts")
	fs.DurationVar(&cfg.Timeout, "wait-timeout", time.Minute, "give up after this long")
	fs.DurationVar(&cfg.Poll, "poll", 200*time.Millisecond, "pause between polls")
	fs.IntVar(&cfg.Conns, "c", 4, "concurrent STAT sessions per poll")
	return func(ctx context.Context) (*load.Result, error) {
		var err error
		if cfg.Target, err = c.target(); err != nil {
			return nil, err
		}
		if cfg.Accounts, err = acc.accounts(); err != nil {
			return nil, err
		}
		return load.RunWait(ctx, cfg)
	}
}

func setupSink(fs *flag.FlagSet, c *common) func(context.Context) (*load.Result, error) {
	var cfg load.SinkConfig
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:2525", "address to listen on, host:port (the MX the relay delivers to)")
	fs.Int64Var(&cfg.Expect, "expect", 0, "messages to wait for")
	fs.DurationVar(&cfg.Timeout, "wait-timeout", 10*time.Minute, "give up after this long")
	return func(ctx context.Context) (*load.Result, error) { return load.RunSink(ctx, cfg) }
}

func setupDNS(fs *flag.FlagSet, c *common) func(context.Context) (*load.Result, error) {
	var cfg load.DNSConfig
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:5353", "address to answer on, host:port (UDP and TCP)")
	fs.Func("record", "a record, \"NAME A|MX|TXT VALUE\" (MX: \"PREF HOST\"); repeat the flag for more", func(v string) error {
		if _, err := load.ParseRecord(v); err != nil {
			return err
		}
		cfg.Records = append(cfg.Records, v)
		return nil
	})
	return func(ctx context.Context) (*load.Result, error) { return load.RunDNS(ctx, cfg) }
}

func setupIdle(fs *flag.FlagSet, c *common) func(context.Context) (*load.Result, error) {
	var (
		cfg   load.IdleConfig
		login bool
		pids  string
	)
	acc := registerAccounts(fs)
	fs.IntVar(&cfg.Conns, "n", 100, "connections to open")
	fs.IntVar(&cfg.Dialers, "c", 16, "connections opened in parallel")
	fs.DurationVar(&cfg.Hold, "hold", 10*time.Second, "how long to hold the connections")
	fs.BoolVar(&login, "login", false, "log in on each connection (connection i uses account i mod accounts; give at least -n)")
	fs.StringVar(&pids, "pid", "", "server process `PID[,PID...]` whose RSS and PSS to sample")
	fs.BoolVar(&cfg.Children, "children", false, "also sample every descendant of the -pid processes (forking servers such as Dovecot)")
	return func(ctx context.Context) (*load.Result, error) {
		var err error
		if cfg.Target, err = c.target(); err != nil {
			return nil, err
		}
		if login {
			if cfg.Accounts, err = acc.accounts(); err != nil {
				return nil, err
			}
		}
		if cfg.PIDs, err = parsePIDs(pids); err != nil {
			return nil, err
		}
		return load.RunIdle(ctx, cfg)
	}
}

// imapFlags are the flags the IMAP scenarios share besides the accounts.
type imapFlags struct {
	auth    string
	mailbox string
}

func registerIMAP(fs *flag.FlagSet) *imapFlags {
	f := &imapFlags{}
	fs.StringVar(&f.auth, "auth", "login", "how to log in: login (LOGIN) or plain (AUTHENTICATE PLAIN, with SASL-IR when offered)")
	fs.StringVar(&f.mailbox, "mailbox", "INBOX", "mailbox to SELECT")
	return f
}

func (f *imapFlags) mode() (load.IMAPAuth, error) {
	switch strings.ToLower(f.auth) {
	case "login":
		return load.IMAPLogin, nil
	case "plain":
		return load.IMAPPlain, nil
	}
	return 0, fmt.Errorf("-auth: %q is neither login nor plain", f.auth)
}

func setupIMAPFetch(fs *flag.FlagSet, c *common) func(context.Context) (*load.Result, error) {
	var cfg load.IMAPFetchConfig
	acc := registerAccounts(fs)
	imf := registerIMAP(fs)
	fs.IntVar(&cfg.Clients, "c", 8, "concurrent clients")
	fs.IntVar(&cfg.Sessions, "sessions", 0, "stop after this many logins (0 with no -duration: each account once)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop starting sessions after this long")
	fs.IntVar(&cfg.Batch, "batch", 0, "messages per FETCH command, by sequence number (0: one UID FETCH 1:* per session)")
	return func(ctx context.Context) (*load.Result, error) {
		var err error
		if cfg.Target, err = c.target(); err != nil {
			return nil, err
		}
		if cfg.Accounts, err = acc.accounts(); err != nil {
			return nil, err
		}
		if cfg.Auth, err = imf.mode(); err != nil {
			return nil, err
		}
		cfg.Mailbox = imf.mailbox
		return load.RunIMAPFetch(ctx, cfg)
	}
}

func setupIMAPIdle(fs *flag.FlagSet, c *common) func(context.Context) (*load.Result, error) {
	cfg := load.IdleConfig{IMAP: true}
	var pids string
	acc := registerAccounts(fs)
	imf := registerIMAP(fs)
	fs.IntVar(&cfg.Conns, "n", 100, "connections to open (connection i logs in to account i mod accounts)")
	fs.IntVar(&cfg.Dialers, "c", 16, "connections opened in parallel")
	fs.DurationVar(&cfg.Hold, "hold", 10*time.Second, "how long to hold the connections in IDLE")
	fs.StringVar(&pids, "pid", "", "server process `PID[,PID...]` whose RSS and PSS to sample")
	fs.BoolVar(&cfg.Children, "children", false, "also sample every descendant of the -pid processes (forking servers such as Dovecot)")
	return func(ctx context.Context) (*load.Result, error) {
		var err error
		if cfg.Target, err = c.target(); err != nil {
			return nil, err
		}
		if cfg.Accounts, err = acc.accounts(); err != nil {
			return nil, err
		}
		if cfg.IMAPAuth, err = imf.mode(); err != nil {
			return nil, err
		}
		cfg.Mailbox = imf.mailbox
		if cfg.PIDs, err = parsePIDs(pids); err != nil {
			return nil, err
		}
		return load.RunIdle(ctx, cfg)
	}
}

func setupIMAPMixed(fs *flag.FlagSet, c *common) func(context.Context) (*load.Result, error) {
	var cfg load.IMAPMixedConfig
	acc := registerAccounts(fs)
	imf := registerIMAP(fs)
	fs.IntVar(&cfg.Clients, "c", 10, "concurrent sessions (session k uses account k mod accounts)")
	fs.IntVar(&cfg.Commands, "n", 0, "stop after this many commands (0: run for -duration)")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "stop starting commands after this long (0 with -n: no time limit)")
	fs.IntVar(&cfg.Size, "size", 4096, "size of APPENDed messages in bytes")
	fs.IntVar(&cfg.Window, "window", 50, "newest messages a header FETCH lists")
	return func(ctx context.Context) (*load.Result, error) {
		var err error
		if cfg.Target, err = c.target(); err != nil {
			return nil, err
		}
		if cfg.Accounts, err = acc.accounts(); err != nil {
			return nil, err
		}
		if cfg.Auth, err = imf.mode(); err != nil {
			return nil, err
		}
		cfg.Mailbox = imf.mailbox
		return load.RunIMAPMixed(ctx, cfg)
	}
}

func setupIMAPAppend(fs *flag.FlagSet, c *common) func(context.Context) (*load.Result, error) {
	var cfg load.IMAPAppendConfig
	acc := registerAccounts(fs)
	imf := registerIMAP(fs)
	fs.IntVar(&cfg.Clients, "c", 4, "concurrent sessions, all on the first account")
	fs.IntVar(&cfg.Messages, "n", 10000, "corpus messages to append (messages 0..n-1 of the corpus)")
	fs.IntVar(&cfg.Words, "words", 250, "words of text per message (about 9 bytes each)")
	fs.IntVar(&cfg.Batch, "batch", 100, "messages per MULTIAPPEND command (1, or a server without MULTIAPPEND: one APPEND each)")
	return func(ctx context.Context) (*load.Result, error) {
		var err error
		if cfg.Target, cfg.Account, cfg.Auth, err = oneIMAPAccount(c, acc, imf); err != nil {
			return nil, err
		}
		cfg.Mailbox = imf.mailbox
		return load.RunIMAPAppend(ctx, cfg)
	}
}

// oneIMAPAccount is what the scenarios working in one account's mailbox take from the
// flags: the target, the first account and how to log in.
func oneIMAPAccount(c *common, acc *accountFlags, imf *imapFlags) (load.Target, load.Account, load.IMAPAuth, error) {
	t, err := c.target()
	if err != nil {
		return t, load.Account{}, 0, err
	}
	accounts, err := acc.accounts()
	if err != nil {
		return t, load.Account{}, 0, err
	}
	how, err := imf.mode()
	return t, accounts[0], how, err
}

func setupIMAPSearch(fs *flag.FlagSet, c *common) func(context.Context) (*load.Result, error) {
	var (
		cfg   load.IMAPSearchConfig
		words string
		rank  int
	)
	acc := registerAccounts(fs)
	imf := registerIMAP(fs)
	fs.IntVar(&cfg.Clients, "c", 1, "concurrent sessions, all on the first account")
	fs.StringVar(&words, "word", "", "words to search for, comma-separated, in turn")
	fs.IntVar(&rank, "rank", 0, "also search the imap-append corpus's word of this frequency rank (1: the most frequent)")
	fs.StringVar(&cfg.Key, "key", "TEXT", "SEARCH key taking a string: TEXT, BODY, SUBJECT, ...")
	fs.IntVar(&cfg.Searches, "n", 0, "stop after this many searches (0: run for -duration)")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "stop starting searches after this long (each word is searched once at least)")
	fs.IntVar(&cfg.Warmup, "warmup", 1, "untimed searches of each word per session first")
	return func(ctx context.Context) (*load.Result, error) {
		var err error
		if cfg.Target, cfg.Account, cfg.Auth, err = oneIMAPAccount(c, acc, imf); err != nil {
			return nil, err
		}
		cfg.Mailbox = imf.mailbox
		for _, w := range strings.Split(words, ",") {
			if w = strings.TrimSpace(w); w != "" {
				cfg.Words = append(cfg.Words, w)
			}
		}
		if rank > 0 {
			cfg.Words = append(cfg.Words, load.CorpusWord(rank))
		}
		return load.RunIMAPSearch(ctx, cfg)
	}
}

// parsePIDs parses the -pid list.
func parsePIDs(list string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("-pid: bad process id %q", p)
		}
		out = append(out, pid)
	}
	return out, nil
}
