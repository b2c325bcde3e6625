package app

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"petrel/internal/config"
	"petrel/internal/store/postgres"
	"petrel/internal/store/sqlite"
)

// Finding is one thing `petrel check` saw: a Problem stops a start (or breaks mail); a
// warning is worth knowing.
type Finding struct {
	Problem bool
	Text    string
}

// certWarnBefore is how long before expiry a certificate is reported.
const certWarnBefore = 14 * 24 * time.Hour

// Check looks at what a start would use, without starting anything or writing: the user to
// switch to, the certificate and key (they load, belong together, cover the host name, are
// not about to expire), the data directory and its store (readable, schema), the pull key
// when there are pull sources (checkPullKey), the DKIM keys of every hosted domain, and every listen address (free and bindable; skipped while a
// server runs on the data directory, which holds them).
func Check(ctx context.Context, cfg *config.Config, now time.Time) []Finding {
	var found []Finding
	problem := func(format string, args ...any) { found = append(found, Finding{true, fmt.Sprintf(format, args...)}) }
	warn := func(format string, args ...any) { found = append(found, Finding{false, fmt.Sprintf(format, args...)}) }

	if cfg.User != "" {
		if _, err := lookupUser(cfg.User); err != nil {
			problem("%v", err)
		}
	}
	checkCert(cfg, now, problem, warn)

	running := false
	if _, err := os.Stat(cfg.Data); errors.Is(err, fs.ErrNotExist) {
		warn("data directory %s does not exist yet: the first start creates it", cfg.Data)
	} else if err := checkDataDir(cfg.Data); err != nil {
		problem("%v", err)
	} else {
		running = serverRunning(cfg.Data)
		checkStore(ctx, cfg, problem, warn)
	}
	if running {
		warn("a petrel serve runs on %s: the listen addresses are its own, not checked", cfg.Data)
	} else if bs, err := bindAll(cfg); err != nil {
		problem("%v", err)
	} else {
		for _, b := range bs {
			b.l.Close()
		}
	}
	return found
}

func checkCert(cfg *config.Config, now time.Time, problem, warn func(string, ...any)) {
	certFile, keyFile := cfg.TLS.Cert, cfg.TLS.Key
	if cfg.ACME.Enabled {
		// One file holds the chain and its key (server/acme); a renewal failing for weeks
		// shows here as an expiry warning.
		certFile = filepath.Join(cfg.Data, "acme", "certificate.pem")
		keyFile = certFile
		if _, err := os.Stat(certFile); err != nil {
			return // ordered at the first start
		}
	} else if cfg.Dev && certFile == "" {
		certFile, keyFile = filepath.Join(cfg.Data, "tls", "cert.pem"), filepath.Join(cfg.Data, "tls", "key.pem")
		if _, err := os.Stat(certFile); err != nil {
			return // made at the first start
		}
	}
	c, err := loadCerts(certFile, keyFile)
	if err != nil {
		problem("%v", err) // unreadable, not PEM, or a key that is not the certificate's
		return
	}
	kp := c.cur.Load()
	leaf, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		problem("tls: %s: %v", certFile, err)
		return
	}
	switch left := leaf.NotAfter.Sub(now); {
	case left <= 0:
		problem("tls: %s expired on %s", certFile, leaf.NotAfter.UTC().Format(time.DateOnly))
	case left < certWarnBefore:
		warn("tls: %s expires in %d days (%s)", certFile, int(left.Hours()/24), leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	if now.Before(leaf.NotBefore) {
		problem("tls: %s is not valid before %s", certFile, leaf.NotBefore.UTC())
	}
	if !cfg.Dev {
		if err := leaf.VerifyHostname(cfg.Hostname); err != nil {
			warn("tls: %s does not name the host name %s: clients will refuse it (%v)", certFile, cfg.Hostname, err)
		}
	}
}

// serverRunning reports whether a petrel serve holds the data directory's lock.
func serverRunning(dir string) bool {
	f, err := os.Open(filepath.Join(dir, lockName))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

func checkStore(ctx context.Context, cfg *config.Config, problem, warn func(string, ...any)) {
	path := StorePath(cfg.Data)
	var have, want int
	var err error
	if cfg.Store.Backend == "postgres" {
		path = "PostgreSQL database"
		var pw string
		if pw, err = storePassword(cfg.Store); err == nil {
			have, want, err = postgres.SchemaVersions(ctx, cfg.Store.DSN, pw)
		}
		if err == nil && have == 0 {
			err = fs.ErrNotExist
		}
	} else {
		have, want, err = sqlite.SchemaVersions(ctx, path)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		where := cfg.Data
		if cfg.Store.Backend == "postgres" {
			where = "the PostgreSQL database"
		}
		warn("no store in %s yet: the first start (or petrel migrate) creates it", where)
		return
	case err != nil:
		problem("store %s: %v", path, err)
		return
	case have > want:
		problem("store %s has schema version %d, this petrel knows %d: it was written by a newer petrel", path, have, want)
		return
	case have < want:
		warn("store %s has schema version %d: the next start migrates it to %d (run `petrel verify` and `petrel backup` first)", path, have, want)
		return
	}
	st, err := OpenConfiguredStore(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		problem("store %s: %v", path, err)
		return
	}
	defer st.Close()
	domains, err := st.Domains(ctx)
	if err != nil {
		problem("store %s: %v", path, err)
		return
	}
	checkPullKey(ctx, cfg, st, problem, warn)
	keys, err := OpenDKIMStore(cfg, st, false)
	if err != nil {
		problem("dkim: %v", err)
		return
	}
	for _, d := range domains {
		ks, err := keys.Keys(ctx, d.Name)
		switch {
		case err != nil:
			problem("dkim: %s: %v", d.Name, err)
		case len(ks) == 0:
			warn("dkim: %s has no signing key: `petrel dkim keygen %s` makes one", d.Name, d.Name)
		}
	}
}
