package postgres

import (
	"testing"

	"petrel/internal/mailtest"
	"petrel/internal/store"
	"petrel/internal/store/storetest"
)

// The suites of the optional interfaces, which the embedded store runs too.

func openTest(t *testing.T) *Store { return openDSN(t, mailtest.PostgresDSN(t), Options{}) }

func TestConformanceGreylist(t *testing.T) {
	s := openTest(t)
	t.Cleanup(func() { s.Close() })
	storetest.RunGreylist(t, s)
}

func TestConformanceBatchAppender(t *testing.T) {
	storetest.RunBatchAppender(t, func(t *testing.T) storetest.BatchStore { return openTest(t) })
}

func TestSieveConformance(t *testing.T) {
	storetest.RunSieve(t, func(t *testing.T) storetest.SieveStore { return openTest(t) })
}

func TestJunkStats(t *testing.T) {
	storetest.RunJunk(t, func(t *testing.T) storetest.JunkStore { return openTest(t) })
}

func TestMultiAppend(t *testing.T) {
	storetest.RunMultiAppend(t, func(t *testing.T) store.Store { return openTest(t) })
}

func TestAdmins(t *testing.T) {
	s := openTest(t)
	t.Cleanup(func() { s.Close() })
	storetest.RunAdmins(t, s)
}

func TestSubscriptionChanges(t *testing.T) {
	storetest.RunSubscriptionChanges(t, func(t *testing.T) store.Store { return openTest(t) })
}

func TestPulls(t *testing.T) {
	storetest.RunPulls(t, func(t *testing.T) storetest.PullStore { return openTest(t) })
	t.Run("state", func(t *testing.T) {
		storetest.RunPullState(t, func(t *testing.T) storetest.PullStateStore { return openTest(t) })
	})
	t.Run("copies", func(t *testing.T) {
		storetest.RunPulledCopies(t, func(t *testing.T) storetest.PulledCopiesStore { return openTest(t) })
	})
}

// Nodes on one database claiming one due source at once: exactly one polls it.
func TestPullClaimsAcrossNodes(t *testing.T) {
	dsn := mailtest.PostgresDSN(t)
	a, b := openDSN(t, dsn, Options{}), openDSN(t, dsn, Options{})
	t.Cleanup(func() { a.Close(); b.Close() })
	storetest.RunPullClaims(t, a, b)
}

func TestSorter(t *testing.T) {
	storetest.RunSorter(t, func(t *testing.T) storetest.SorterStore { return openTest(t) })
}

func TestWebSessions(t *testing.T) {
	s := openTest(t)
	t.Cleanup(func() { s.Close() })
	storetest.RunWebSessions(t, s)
}

func TestFields(t *testing.T) {
	storetest.RunFields(t, func(t *testing.T) storetest.FieldsStore { return openTest(t) })
}

func TestJunkVocabulary(t *testing.T) {
	storetest.RunJunkVocabulary(t, func(t *testing.T) storetest.JunkVocabularyStore { return openTest(t) })
}

func TestBlobBatch(t *testing.T) {
	storetest.RunBlobBatch(t, func(t *testing.T) storetest.BlobBatchStore { return openTest(t) })
}

func TestFlagSearch(t *testing.T) {
	storetest.RunFlagSearch(t, func(t *testing.T) storetest.FlagSearchStore { return openTest(t) })
}

func TestDKIMKeysAcrossNodes(t *testing.T) {
	dsn := mailtest.PostgresDSN(t)
	a, b := openDSN(t, dsn, Options{}), openDSN(t, dsn, Options{})
	t.Cleanup(func() { a.Close(); b.Close() })
	storetest.RunDKIMKeys(t, a, b)
}

func TestHeaderBatch(t *testing.T) {
	storetest.RunHeaderBatch(t, func(t *testing.T) storetest.HeaderBatchStore { return openTest(t) })
}

func TestFlagFirst(t *testing.T) {
	storetest.RunFlagFirst(t, func(t *testing.T) storetest.FlagFirstStore { return openTest(t) })
}
