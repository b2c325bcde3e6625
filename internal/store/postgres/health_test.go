package postgres

import (
	"context"
	"testing"

	"petrel/internal/mailtest"
)

// SchemaCurrent (the readiness check) holds on a store that migrated at open and fails
// once another node has migrated the database past this binary.
func TestSchemaCurrent(t *testing.T) {
	s := openDSN(t, mailtest.PostgresDSN(t), Options{})
	defer s.Close()
	ctx := context.Background()
	if err := s.SchemaCurrent(ctx); err != nil {
		t.Fatalf("SchemaCurrent after open: %v", err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE schema_version SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	if err := s.SchemaCurrent(ctx); err == nil {
		t.Fatal("SchemaCurrent = nil with a newer schema in the database")
	}
}
