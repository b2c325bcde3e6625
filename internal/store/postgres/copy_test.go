package postgres

import (
	"path/filepath"
	"testing"

	"petrel/internal/store/sqlite"
	"petrel/internal/store/storetest"
)

func openCopyPG(t *testing.T) storetest.CopyStore { return openTest(t) }

func openCopySQLite(t *testing.T) storetest.CopyStore {
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "petrel.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCopyEmbeddedToPostgres copies an embedded store into PostgreSQL and back.
func TestCopyEmbeddedToPostgres(t *testing.T) {
	storetest.RunCopy(t, openCopySQLite, openCopyPG)
}

// TestCopyPostgresToEmbedded copies a PostgreSQL store into an embedded one and back.
func TestCopyPostgresToEmbedded(t *testing.T) {
	storetest.RunCopy(t, openCopyPG, openCopySQLite)
}

// TestCopyResume interrupts copies both ways and runs them again until they finish.
func TestCopyResume(t *testing.T) {
	t.Run("to postgres", func(t *testing.T) { storetest.RunCopyResume(t, openCopySQLite, openCopyPG) })
	t.Run("from postgres", func(t *testing.T) { storetest.RunCopyResume(t, openCopyPG, openCopySQLite) })
}
