package cli

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"petrel/internal/app"
	"petrel/internal/config"
	"petrel/internal/lib/safefile"
	"petrel/internal/mail/auth"
	"petrel/internal/server/acme"
	"petrel/internal/store"
)

func quickstartCommands() []command {
	return []command{
		{noun: "quickstart", args: quickstartUsage, run: quickstartRun, flags: quickstartFlags,
			help: "set up a real instance for ADDRESS's domain: config, certificates, domain, account, DKIM key, DNS records, systemd unit",
			more: `Writes a commented config (-c, default ` + app.InstalledConfig + `) for the host name (default
mail.DOMAIN), creates the data directory (--data, default ` + app.InstalledData + `), the domain, the
account ADDRESS (its password printed once, or read from stdin with --password-stdin) and
its DKIM keys, writes the hardened systemd unit, and prints every DNS record to publish.

Certificates come from Let's Encrypt (ACME, the [acme] section): the CA checks the names
by connecting to port 443 of this host, so publish the A/AAAA records first and let 443 in.
--acme-contact is the address the CA writes to about expiry (default ADDRESS);
--acme-directory another ACME CA (a private one: with --acme-ca-file, the PEM roots of its
HTTPS). A host that no CA can reach (no public port 443, a closed network) takes --no-acme:
a self-signed certificate next to the config until you point [tls] at one of your own.

It refuses to overwrite an existing config or data directory; run again on what it made,
it changes nothing and says so.`},
	}
}

func quickstartFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.String("hostname", "", "the mail host name (default mail.DOMAIN)")
	fs.String("unit", app.UnitPath, `where to write the systemd unit ("-": nowhere)`)
	fs.Bool("password-stdin", false, "read the account's password from stdin instead of making one")
	fs.String("acme-contact", "", "the address the ACME CA writes to about the certificates (default ADDRESS)")
	fs.String("acme-directory", acme.LetsEncrypt, "the ACME CA's directory URL")
	fs.String("acme-ca-file", "", "PEM certificates to trust for the ACME directory's HTTPS (a private CA)")
	fs.Bool("no-acme", false, "no ACME: a self-signed certificate, for a host no CA can reach")
	return fs
}

const quickstartUsage = "[--hostname NAME] [--unit FILE] [--password-stdin] [--acme-contact ADDRESS] [--acme-directory URL] [--acme-ca-file FILE | --no-acme] ADDRESS"

// acmeChoice is what quickstart writes into [acme]; a nil one means a self-signed
// certificate in [tls] instead.
type acmeChoice struct {
	contact, directory, caFile string
}

// quickstartACME reads and checks the ACME flags before anything is written.
func quickstartACME(fset *flag.FlagSet, addr string) (*acmeChoice, error) {
	get := func(name string) string { return fset.Lookup(name).Value.String() }
	if get("no-acme") == "true" {
		for _, name := range []string{"acme-contact", "acme-ca-file"} {
			if get(name) != "" {
				return nil, fmt.Errorf("%w: --%s and --no-acme", ErrUsage, name)
			}
		}
		if get("acme-directory") != acme.LetsEncrypt {
			return nil, fmt.Errorf("%w: --acme-directory and --no-acme", ErrUsage)
		}
		return nil, nil
	}
	c := &acmeChoice{contact: addr, directory: get("acme-directory")}
	if v := get("acme-contact"); v != "" {
		contact, err := normAddress(v)
		if err != nil {
			return nil, fmt.Errorf("--acme-contact: %w", err)
		}
		c.contact = contact
	}
	// RFC 8555 §6.1: every request goes over HTTPS.
	if u, err := url.Parse(c.directory); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%w: --acme-directory %q is not an https:// URL", ErrUsage, c.directory)
	}
	if v := get("acme-ca-file"); v != "" {
		abs, err := filepath.Abs(v)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(abs)
		if err != nil {
			return nil, fmt.Errorf("--acme-ca-file: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--acme-ca-file: no PEM certificate in %s", abs)
		}
		c.caFile = abs
	}
	return c, nil
}

// quickstartMark is the first line of a config quickstart wrote, naming the address: a
// second run recognizes its own work by it.
func quickstartMark(addr string) string { return "# Written by `petrel quickstart " + addr + "`." }

func quickstartRun(e *Env, args []string) error {
	fset := quickstartFlags()
	if err := parseFlags(fset, args, 1, "quickstart "+quickstartUsage); err != nil {
		return err
	}
	addr, err := normAddress(fset.Arg(0))
	if err != nil {
		return err
	}
	acmeConf, err := quickstartACME(fset, addr)
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
	var certFile, keyFile string // a self-signed certificate; none with ACME
	if acmeConf == nil {
		certFile, keyFile = filepath.Join(confDir, "tls", "cert.pem"), filepath.Join(confDir, "tls", "key.pem")
		if _, err := os.Stat(certFile); errors.Is(err, fs.ErrNotExist) {
			if err := app.WriteSelfSigned(certFile, keyFile, hostname); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return err
	}
	if err := safefile.WriteAtomic(confFile, []byte(quickstartConfig(addr, hostname, domain, data, certFile, keyFile, acmeConf)), 0o644); err != nil {
		return err
	}
	c, err := config.Load(confFile)
	if err != nil {
		return fmt.Errorf("the config quickstart wrote does not load (a bug): %w", err)
	}
	if acmeConf == nil {
		fmt.Fprintf(e.Stdout, "wrote %s (host name %s; certificate %s is self-signed: replace it with a CA-signed one)\n", confFile, hostname, certFile)
	} else {
		fmt.Fprintf(e.Stdout, "wrote %s (host name %s; certificates from the ACME CA %s, contact %s)\n", confFile, hostname, acmeConf.directory, acmeConf.contact)
		fmt.Fprintf(e.Stdout, "The CA checks %s, autoconfig.%s and mta-sts.%s by connecting to port 443 of this host:\n"+
			"publish their A/AAAA records and let port 443 in before the first start (until then, and for\n"+
			"a name it could not check, the server uses a self-signed certificate and tries again).\n", hostname, domain, domain)
	}
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
		dkim, err := app.OpenDKIMStore(c, st, true)
		if err != nil {
			return err
		}
		keys, err := app.EnsureDKIMKeys(e.Ctx, dkim, domain, time.Now())
		if err != nil {
			return err
		}
		if err := printNewKeys(e, keys); err != nil {
			return err
		}
		all, err := dkim.Keys(e.Ctx, domain)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "\nPublish these DNS records (and A/AAAA records for %s):\n\n", hostname)
		return writeZone(e, c, domain, all)
	})
	if err != nil {
		return err
	}
	if err := giveToServiceUser(c.Data, keyFile); err != nil { // keyFile "": ACME's is in the data directory
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
	if err != nil || keyFile == "" {
		return err
	}
	// The key stays root's, readable by the group.
	if err := os.Chown(keyFile, 0, gid); err != nil {
		return err
	}
	return os.Chmod(keyFile, 0o640)
}

func quickstartConfig(addr, hostname, domain, data, certFile, keyFile string, ac *acmeChoice) string {
	return quickstartMark(addr) + `
# Every key is optional except the certificate: [acme] enabled, or tls.cert and tls.key. The
# README's configuration reference lists them all with their defaults. After a change:
# petrel -c THIS-FILE check.

hostname = "` + hostname + `"   # greeting, Received headers, MX target; needs A/AAAA records
data = "` + data + `"           # store, DKIM keys; back it up with petrel backup
domains = ["` + domain + `"]    # created at start if absent; more with petrel domain add
# user = "petrel"               # only when started as root without systemd: switch once ports are bound

[log]
format = "text"                 # or "json"
level = "info"

` + quickstartTLS(addr, hostname, domain, certFile, keyFile, ac) + `
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

[http]
listen = ["0.0.0.0:80"]         # client set-up, MTA-STS policy, ACME http-01; redirects to HTTPS
listen_tls = ["0.0.0.0:443"]    # webmail, admin, autoconfig, MTA-STS, ACME tls-alpn-01
`
}

// quickstartTLS is the certificate part of the config: [acme], or [tls] with the
// self-signed files and [acme] commented out, ready to be switched on.
func quickstartTLS(addr, hostname, domain, certFile, keyFile string, ac *acmeChoice) string {
	names := hostname + ", autoconfig." + domain + " and mta-sts." + domain
	if ac == nil {
		return `[tls]
# Self-signed until you have a certificate from a CA; then point these at it and send SIGHUP
# (systemctl reload petrel). Or let Petrel get and renew one itself: remove [tls] and
# uncomment [acme] (the CA connects to port 443 of this host to check ` + names + `).
cert = "` + certFile + `"
key = "` + keyFile + `"

# [acme]
# enabled = true
# contact = "` + addr + `"
# directory = "` + acme.LetsEncrypt + `"
`
	}
	caFile := `# ca_file = ""                  # PEM roots for the directory's HTTPS (a private CA); default the system's`
	if ac.caFile != "" {
		caFile = `ca_file = ` + strconv.Quote(ac.caFile) + `  # PEM roots for the directory's HTTPS`
	}
	return `[acme]
# Certificates for ` + names + `,
# renewed in the background a third of their lifetime before expiry and taken by every TLS
# listener (ManageSieve included) without a restart. The CA checks each
# name by connecting to port 443 of this host (http.listen_tls), so publish A/AAAA records for
# them and let 443 in. State: ` + "`acme/`" + ` in the data directory.
# Cannot be reached from the Internet? Remove this section and set [tls] cert and key.
enabled = true
contact = ` + strconv.Quote(ac.contact) + `  # the CA writes here about expiry and problems
directory = ` + strconv.Quote(ac.directory) + `
` + caFile + `
challenge = "tls-alpn-01"       # on port 443; "http-01" checks on port 80 (http.listen) instead
`
}
