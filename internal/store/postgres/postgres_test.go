package postgres

import (
	"context"
	"os"
	"sync"
	"testing"

	"petrel/internal/mailtest"
	"petrel/internal/store"
	"petrel/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(mailtest.PostgresMain(m)) }

func openDSN(t testing.TB, dsn string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openDSN(t, mailtest.PostgresDSN(t), Options{}) })
}

func TestConformanceReopen(t *testing.T) {
	var mu sync.Mutex
	dsns := map[string]string{} // the suite's data directory → the test's database
	storetest.RunReopen(t, func(t *testing.T, dir string) store.Store {
		mu.Lock()
		dsn, ok := dsns[dir]
		if !ok {
			dsn = mailtest.PostgresDSN(t)
			dsns[dir] = dsn
		}
		mu.Unlock()
		return openDSN(t, dsn, Options{})
	})
}
