package pull

import (
	"bytes"
	"path/filepath"
	"sync"
	"testing"
)

// TestLoadKeyRace: processes creating the key file at once (PostgreSQL nodes starting
// together on one key file) all end with the one key that was written first, whole.
func TestLoadKeyRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "pull.key")
	const n = 8
	sealers := make([]*Sealer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { sealers[i], errs[i] = LoadKey(path, true) })
	}
	wg.Wait()
	ad := []byte("petrel test")
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("loader %d: %v", i, errs[i])
		}
		sealed := sealers[i].SealData([]byte("secret"), ad)
		for j := range n {
			if got, err := sealers[j].OpenData(sealed, ad); err != nil || !bytes.Equal(got, []byte("secret")) {
				t.Fatalf("sealed by %d, opened by %d: %q, %v; want one key for all", i, j, got, err)
			}
		}
	}
	// The additional data binds: the same bytes under another ad do not open.
	sealed := sealers[0].SealData([]byte("secret"), ad)
	if _, err := sealers[0].OpenData(sealed, []byte("petrel other")); err == nil {
		t.Fatal("a sealed value opened under another ad")
	}
	other, err := LoadKey(filepath.Join(t.TempDir(), "other.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.OpenData(sealed, ad); err == nil {
		t.Fatal("a sealed value opened with another key")
	}
}
