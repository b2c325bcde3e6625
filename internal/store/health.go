package store

import "context"

// SchemaChecker is a store whose schema other processes may change while it runs (several
// nodes on one PostgreSQL database, where a newer node migrates it): SchemaCurrent is nil
// while the schema is the one this binary writes. The readiness check reports it.
type SchemaChecker interface {
	SchemaCurrent(ctx context.Context) error
}
