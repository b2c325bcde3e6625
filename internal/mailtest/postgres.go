package mailtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL for tests of the PostgreSQL store: a throwaway cluster from the Debian package
// (postgresql), initdb'd into a temporary directory and listening only on a unix socket
// there, so it needs no port and no network namespace. One cluster serves a whole test
// binary (PostgresMain in TestMain stops it; without it, the kernel stops it with the test
// binary through the parent-death signal), and each test gets a database of its own.
//
// PETREL_TEST_POSTGRES, a libpq connection string to a server where the tests may create
// databases, makes the tests use that server instead of starting one.

// PostgresEnv names the variable that points the tests at an existing PostgreSQL server.
const PostgresEnv = "PETREL_TEST_POSTGRES"

// The shared cluster of this test binary. It is package state, unlike everything else
// here, because TestMain must stop what the tests started: a cluster per test would cost
// a second of initdb each.
var (
	pgOnce    sync.Once
	pgCluster *Postgres
	pgErr     error
)

// Postgres is a running cluster of the tests.
type Postgres struct {
	Dir    string // its temporary directory: data/, the socket and the log
	DSN    string // connection string of its postgres database (superuser, no password)
	cmd    *exec.Cmd
	exited chan error // the postmaster's exit

	server, data string              // the postgres program and the data directory
	cred         *syscall.Credential // the user it runs as (nil: ours)
}

// PostgresMain runs the tests of m and then stops the shared cluster if they started one.
// Use it as os.Exit(mailtest.PostgresMain(m)) in TestMain.
func PostgresMain(m *testing.M) int {
	code := m.Run()
	if pgCluster != nil {
		pgCluster.Stop()
	}
	return code
}

// PostgresDSN returns the connection string of a new, empty database on the shared
// cluster (started at the first call), dropped when the test ends. Without PostgreSQL's
// binaries it skips the test, or fails it when CI is set.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	server := os.Getenv(PostgresEnv)
	if server == "" {
		pgOnce.Do(func() { pgCluster, pgErr = StartPostgres() })
		if errors.Is(pgErr, errNoPostgres) {
			if os.Getenv("CI") != "" {
				t.Fatalf("PostgreSQL is required in CI (apt-get install postgresql): %v", pgErr)
			}
			t.Skipf("PostgreSQL not installed (%v); set %s to use a running server", pgErr, PostgresEnv)
		}
		if pgErr != nil {
			t.Fatal(pgErr)
		}
		server = pgCluster.DSN
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	rand.Read(b[:])
	name := "petrel_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("dropping database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping database %s: %v", name, err)
		}
	})
	cfg, err := pgx.ParseConfig(server)
	if err != nil {
		t.Fatal(err)
	}
	return withDatabase(server, cfg.Database, name)
}

// withDatabase returns the connection string dsn with the database name replaced.
func withDatabase(dsn, old, name string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name // a later keyword wins in a key=value string
}

var errNoPostgres = errors.New("PostgreSQL binaries not found")

// postgresBin finds a PostgreSQL server program: on PATH, or where Debian installs it.
func postgresBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) == 0 {
		return "", fmt.Errorf("%w: no %s", errNoPostgres, name)
	}
	return matches[len(matches)-1], nil
}

// StartPostgres initdb's a cluster into a new temporary directory and starts it on a unix
// socket there. PostgreSQL refuses to run as root: as root, both run as the postgres user,
// which owns the directory. Stop stops it and removes the directory.
func StartPostgres() (*Postgres, error) {
	initdb, err := postgresBin("initdb")
	if err != nil {
		return nil, err
	}
	server, err := postgresBin("postgres")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "petrel-postgres")
	if err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("%w: running as root and no postgres user: %v", errNoPostgres, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	p := &Postgres{Dir: dir}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	p.server, p.data, p.cred = server, data, cred
	p.DSN = "host=" + dir + " user=postgres dbname=postgres sslmode=disable"
	if err := p.run(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

// run starts the postmaster of an initdb'd cluster and waits until it accepts connections.
func (p *Postgres) run() error {
	logFile, err := os.OpenFile(filepath.Join(p.Dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	if p.cred != nil {
		os.Chown(logFile.Name(), int(p.cred.Uid), int(p.cred.Gid))
	}
	// No TCP at all (listen_addresses empty): the socket in dir is the only way in.
	p.cmd = exec.Command(p.server, "-D", p.data, "-k", p.Dir, "-c", "listen_addresses=",
		"-c", "max_connections=300", "-c", "shared_buffers=64MB")
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// SIGQUIT is PostgreSQL's immediate shutdown: a cluster whose test binary died goes too.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	p.exited = exited
	cmd := p.cmd
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, p.DSN)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(logFile.Name())
			return fmt.Errorf("postgres exited: %v\n%s", werr, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.cmd.Process.Kill()
			<-exited
			return fmt.Errorf("postgres did not accept connections within a minute: %v", err)
		}
	}
}

// Restart stops the cluster (fast shutdown: every session is ended, as in a failover) and
// starts it again on the same data and socket.
func (p *Postgres) Restart() error {
	p.shutdown()
	return p.run()
}

// PostgresCluster starts a cluster of the test's own (for a test that stops or restarts
// it), stopped when the test ends. Without PostgreSQL's binaries it skips the test, or
// fails it when CI is set.
func PostgresCluster(t testing.TB) *Postgres {
	t.Helper()
	p, err := StartPostgres()
	if errors.Is(err, errNoPostgres) {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL is required in CI (apt-get install postgresql): %v", err)
		}
		t.Skipf("PostgreSQL not installed (%v)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// Stop shuts the cluster down (fast shutdown: SIGINT to its postmaster, by PID) and removes
// its directory.
func (p *Postgres) Stop() {
	p.shutdown()
	os.RemoveAll(p.Dir)
}

// shutdown stops the postmaster (fast shutdown, by PID) and waits for it.
func (p *Postgres) shutdown() {
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}
