package cli

import (
	"bytes"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"petrel/internal/app"
	"petrel/internal/config"
	"petrel/internal/lib/safefile"
	"petrel/internal/mail/auth"
	"petrel/internal/store"
)

func quickstartCommands() []command {
	return []command{
		{noun: "quickstart", args: "[--hostname NAME] [--unit FILE] [--password-stdin] ADDRESS", run: quickstartRun, flags: quickstartFlags,
			help: "set up a real instance for ADDRESS's domain: config, domain, account, DKIM key, DNS records, systemd unit",
			more: `Writes a commented config (-c, default ` + app.InstalledConfig + `) for the host name (default
mail.DOMAIN) with a self-signed certificate next to it until a CA-signed one replaces it,
creates the data directory (--data, default ` + app.InstalledData + `), the domain, the
account ADDRESS (its password printed once, or read from stdin with --password-stdin) and
its DKIM keys, writes the hardened systemd unit, and prints every DNS record to publish.
It refuses to overwrite an existing config or data directory; run again on what it made,
it changes nothing and says so.`},
	}
}

func quickstartFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.String("hostname", "", "the mail host name (default mail.DOMAIN)")
	fs.String("unit", app.UnitPath, `where to write the systemd unit ("-": nowhere)`)
	fs.Bool("password-stdin", false, "read the account's password from stdin instead of making one")
	return fs
}

// quickstartMark is the first line of a config quickstart wrote, naming the address: a
// second run recognizes its own work by it.
func quickstartMark(addr string) string { return "# Written by `petrel quickstart " + addr + "`." }

func quickstartRun(e *Env, args []string) error {
	fset := quickstartFlags()
	if err := parseFlags(fset, args, 1, "quickstart [--hostname NAME] [--unit FILE] [--password-stdin] ADDRESS"); err != nil {
		return err
	}
	addr, err := normAddress(fset.Arg(0))
	if err != nil {
		return err
	}
	domain := domainOf(addr)
	hostname := fset.Lookup("hostname").Value.String()
	if hostname == "" {
		hostname = "mail." + domain
	}
	if hostname, err = normDomain(hostname); err != nil {
		return err
	}
	unit := fset.Lookup("unit").Value.String()
	confFile := e.ConfigFile
	if confFile == "" {
		confFile = app.InstalledConfig
	}
	if confFile, err = filepath.Abs(confFile); err != nil {
		return err
	}
	data := e.DataDir
	if data == "" {
		data = app.InstalledData
	}
	if data, err = filepath.Abs(data); err != nil {
		return err
	}

	// A second run: the config is ours for this address, and what it made is there.
	if b, err := os.ReadFile(confFile); err == nil {
		if !bytes.HasPrefix(b, []byte(quickstartMark(addr)+"\n")) {
			return fmt.Errorf("%s exists and quickstart did not write it for %s: nothing changed (edit it, or pass -c for a new one)", confFile, addr)
		}
		return quickstartAgain(e, confFile, addr)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := emptyDir(data, "the data directory"); err != nil {
		return fmt.Errorf("%w: quickstart sets up a new instance only (pass --data for another directory)", err)
	}
	if unit != "-" {
		if _, err := os.Stat(unit); err == nil {
			return fmt.Errorf("%s exists: nothing changed (pass --unit - to leave the unit alone, or --unit FILE)", unit)
		}
	}
	var password string
	if fset.Lookup("password-stdin").Value.String() == "true" {
		if password, err = e.readPassword(); err != nil {
			return err
		}
	} else {
		password = rand.Text()
	}
	cred, err := auth.NewCredentials(password)
	if err != nil {
		return err
	}

	// Now write: certificate, config, store, keys, unit.
	confDir := filepath.Dir(confFile)
	certFile, keyFile := filepath.Join(confDir, "tls", "cert.pem"), filepath.Join(confDir, "tls", "key.pem")
	if _, err := os.Stat(certFile); errors.Is(err, fs.ErrNotExist) {
		if err := app.WriteSelfSigned(certFile, keyFile, hostname); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return err
	}
	if err := safefile.WriteAtomic(confFile, []byte(quickstartConfig(addr, hostname, domain, data, certFile, keyFile)), 0o644); err != nil {
		return err
	}
	c, err := config.Load(confFile)
	if err != nil {
		return fmt.Errorf("the config quickstart wrote does not load (a bug): %w", err)
	}
	fmt.Fprintf(e.Stdout, "wrote %s (host name %s; certificate %s is self-signed: replace it with a CA-signed one)\n", confFile, hostname, certFile)
	e.ConfigFile, e.DataDir = confFile, ""
	err = e.withStore(func(st store.Store) error {
		if _, err := st.AddAccount(e.Ctx, addr, cred); err != nil {
			return fmt.Errorf("cannot add account %s: %w", addr, err)
		}
		if fset.Lookup("password-stdin").Value.String() == "true" {
			fmt.Fprintf(e.Stdout, "created account %s\n", addr)
		} else {
			fmt.Fprintf(e.Stdout, "created account %s with password %s (shown once; change it with `petrel account passwd %s`)\n", addr, password, addr)
		}
		keys, err := app.EnsureDKIMKeys(e.Ctx, app.DKIMKeys(c.Data), domain, time.Now())
		if err != nil {
			return err
		}
		if err := printNewKeys(e, keys); err != nil {
			return err
		}
		all, err := app.DKIMKeys(c.Data).SigningKeys(e.Ctx, domain)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "\nPublish these DNS records (and A/AAAA records for %s):\n\n", hostname)
		return writeZone(e, c, domain, all)
	})
	if err != nil {
		return err
	}
	if err := giveToServiceUser(c.Data, keyFile); err != nil {
		return err
	}
	if unit != "-" {
		if err := os.MkdirAll(filepath.Dir(unit), 0o755); err != nil {
			return err
		}
		if err := safefile.WriteAtomic(unit, []byte(app.SystemdUnit(app.InstalledBinary, confFile, c.Data)), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "\nwrote %s; start it with: systemctl daemon-reload && systemctl enable --now petrel\n", unit)
	}
	fmt.Fprintf(e.Stdout, "`petrel -c %s check` shows what would stop a start.\n", confFile)
	return nil
}

// quickstartAgain answers a second run: nothing is written.
func quickstartAgain(e *Env, confFile, addr string) error {
	e.ConfigFile, e.DataDir = confFile, ""
	return e.withStore(func(st store.Store) error {
		if _, err := st.AccountByAddress(e.Ctx, addr); err != nil {
			return fmt.Errorf("%s was written by quickstart, but account %s is missing: add it with `petrel -c %s account add %s`", confFile, addr, confFile, addr)
		}
		fmt.Fprintf(e.Stdout, "%s is set up already (%s, account %s): nothing changed\n", confFile, domainOf(addr), addr)
		return nil
	})
}

// giveToServiceUser hands the data directory and the key to the petrel system user (made by
// the Debian package), as whom the unit runs. Without that user, nothing changes.
func giveToServiceUser(data, keyFile string) error {
	u, err := user.Lookup(app.ServiceUser)
	if err != nil || os.Geteuid() != 0 {
		return nil
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err = filepath.WalkDir(data, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		return err
	}
	// The key stays root's, readable by the group.
	if err := os.Chown(keyFile, 0, gid); err != nil {
		return err
	}
	return os.Chmod(keyFile, 0o640)
}

func quickstartConfig(addr, hostname, domain, data, certFile, keyFile string) string {
	return quickstartMark(addr) + `
# Every key is optional except tls.cert and tls.key; the README's configuration reference
# lists them all with their defaults. After a change: petrel -c THIS-FILE check.

hostname = "` + hostname + `"   # greeting, Received headers, MX target; needs A/AAAA records
data = "` + data + `"           # store, DKIM keys; back it up with petrel backup
domains = ["` + domain + `"]    # created at start if absent; more with petrel domain add
# user = "petrel"               # only when started as root without systemd: switch once ports are bound

[log]
format = "text"                 # or "json"
level = "info"

[tls]
# Self-signed until you have a certificate from a CA (e.g. certbot certonly for ` + hostname + `);
# then point these at it and send SIGHUP (systemctl reload petrel).
cert = "` + certFile + `"
key = "` + keyFile + `"

[smtp]
listen = ["0.0.0.0:25"]         # inbound MX for the hosted domains
submission = ["0.0.0.0:587"]    # mail clients: STARTTLS, then AUTH
submissions = ["0.0.0.0:465"]   # mail clients: implicit TLS

[pop3]
listen = ["0.0.0.0:110"]
listen_tls = ["0.0.0.0:995"]

[imap]
listen = ["0.0.0.0:143"]
listen_tls = ["0.0.0.0:993"]

[managesieve]
listen = ["0.0.0.0:4190"]       # users' Sieve filters (RFC 5804), STARTTLS
`
}
