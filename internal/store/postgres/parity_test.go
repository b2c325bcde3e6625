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

func TestFields(t *testing.T) {
	storetest.RunFields(t, func(t *testing.T) storetest.FieldsStore { return openTest(t) })
}

func TestJunkVocabulary(t *testing.T) {
	storetest.RunJunkVocabulary(t, func(t *testing.T) storetest.JunkVocabularyStore { return openTest(t) })
}
