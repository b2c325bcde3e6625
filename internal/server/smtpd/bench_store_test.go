package smtpd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"petrel/internal/mail/sieve"
	"testing"
	"time"

	"petrel/internal/mail/deliver"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

// BenchmarkInboundSQLite is the whole inbound path as `petrel serve` runs it: SMTP sessions
// over loopback, recipient lookup and delivery through the real deliver package into the
// real SQLite store (group commit, fsync), 2 KB messages over 32 connections spread over 8
// mailboxes. msgs/s and cpu-µs/msg include the client, which runs in the same process.
//
// The full-text index is written by the store's background indexer after the commits;
// indexed-cpu-µs/msg adds the CPU of indexing what was still queued when the last message
// was accepted, so that deferring the work does not hide it.
func BenchmarkInboundSQLite(b *testing.B) {
	addr, st := startSQLiteServer(b, 8, Config{})
	rcpts := make([]string, 8)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("user%d@example.test", i+1)
	}
	cpu := cpuTime()
	benchInbound(b, addr, 32, 2048, rcpts)
	if err := st.IndexQueued(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "indexed-cpu-µs/msg")
}

// BenchmarkInboundSQLite100K is the same with 100 KB messages over 8 connections, as in
// the S3 scenario of bench/compare.sh: the DATA reader, the spool, the parse and the blob
// write.
func BenchmarkInboundSQLite100K(b *testing.B) {
	addr := startStoreServer(b, 8)
	rcpts := make([]string, 8)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("user%d@example.test", i+1)
	}
	benchInbound(b, addr, 8, 100<<10, rcpts)
}

// BenchmarkInboundSQLiteSieve is BenchmarkInboundSQLite with a 20-rule Sieve script
// (sieve.Rules20) active in every account: what users' filters cost the inbound path.
func BenchmarkInboundSQLiteSieve(b *testing.B) {
	addr := startStore(b, 8, Config{}, sieve.Rules20())
	rcpts := make([]string, 8)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("user%d@example.test", i+1)
	}
	benchInbound(b, addr, 32, 2048, rcpts)
}

// startStoreServer runs an MX server backed by a fresh SQLite store with the accounts
// user1..userN@example.test.
func startStoreServer(b *testing.B, accounts int) string {
	return startStoreServerConfig(b, accounts, Config{})
}

// startStoreServerConfig is startStoreServer with cfg (its Hostname is set).
func startStoreServerConfig(b *testing.B, accounts int, cfg Config) string {
	return startStore(b, accounts, cfg, "")
}

// startStore is startStoreServerConfig with a Sieve script active in every account ("":
// none, and delivery runs no scripts).
func startStore(b *testing.B, accounts int, cfg Config, script string) string {
	st, accts := openBenchStore(b, accounts)
	d := deliver.New(st, slog.New(slog.DiscardHandler))
	if script != "" {
		d.SetSieve(&deliver.SieveConfig{Store: st, Limits: sieve.DefaultLimits(), Hostname: "mx.example.test"})
		ctx := context.Background()
		for _, a := range accts {
			if err := st.PutSieveScript(ctx, a.ID, "rules", script); err != nil {
				b.Fatal(err)
			}
			if err := st.SetActiveSieveScript(ctx, a.ID, "rules"); err != nil {
				b.Fatal(err)
			}
		}
	}
	return serveBench(b, cfg, d)
}

// startSQLiteServer is startStoreServerConfig that also returns the store.
func startSQLiteServer(b *testing.B, accounts int, cfg Config) (string, *sqlite.Store) {
	st, _ := openBenchStore(b, accounts)
	return serveBench(b, cfg, deliver.New(st, slog.New(slog.DiscardHandler))), st
}

// openBenchStore opens a fresh SQLite store, closed when the benchmark ends, with the
// accounts user1..userN@example.test.
func openBenchStore(b *testing.B, accounts int) (*sqlite.Store, []store.Account) {
	return openBenchStoreOptions(b, accounts, sqlite.Options{})
}

// openBenchStoreOptions is openBenchStore with store options (the logger is set).
func openBenchStoreOptions(b *testing.B, accounts int, opts sqlite.Options) (*sqlite.Store, []store.Account) {
	ctx := context.Background()
	opts.Logger = slog.New(slog.DiscardHandler)
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "petrel.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.AddDomain(ctx, "example.test"); err != nil {
		b.Fatal(err)
	}
	var accts []store.Account
	for i := range accounts {
		a, err := st.AddAccount(ctx, fmt.Sprintf("user%d@example.test", i+1), store.Credentials{})
		if err != nil {
			b.Fatal(err)
		}
		accts = append(accts, a)
	}
	return st, accts
}

// serveBench runs an MX server delivering through d on a loopback port until the
// benchmark ends, and returns its address.
func serveBench(b *testing.B, cfg Config, d Deliverer) string {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	cfg.Hostname = "mx.example.test"
	srv := New(cfg, d, nil, log)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return l.Addr().String()
}
