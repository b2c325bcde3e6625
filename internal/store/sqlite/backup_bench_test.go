package sqlite

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// benchStore is a store of 20,000 messages of 4 KB in 8 mailboxes, closed, and the size of
// its database file.
func benchStore(b *testing.B) (path string, size int64) {
	b.Helper()
	path = filepath.Join(b.TempDir(), "petrel.db")
	s := openPath(b, path, Options{})
	pop3Corpus(b, s, 8, 2500, 4096)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return path, fi.Size()
}

// BenchmarkBackup is `petrel backup`'s store copy (the snapshot's pages and fsync); MB/s are of the
// source database file. Compare BenchmarkCopyFile, a plain copy of the same bytes.
func BenchmarkBackup(b *testing.B) {
	path, size := benchStore(b)
	dir := b.TempDir()
	b.SetBytes(size)
	i := 0
	for b.Loop() {
		dst := filepath.Join(dir, "copy"+string(rune('a'+i%26))+".db")
		os.Remove(dst)
		if err := Backup(context.Background(), path, dst, nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkCopyFile copies the database file with io.Copy and fsync: what a backup of the
// same bytes costs at the least.
func BenchmarkCopyFile(b *testing.B) {
	path, size := benchStore(b)
	dst := filepath.Join(b.TempDir(), "copy.db")
	b.SetBytes(size)
	for b.Loop() {
		in, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		out, err := os.Create(dst)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			b.Fatal(err)
		}
		out.Sync()
		out.Close()
		in.Close()
	}
}

// BenchmarkVerify is `petrel verify` of the same store.
func BenchmarkVerify(b *testing.B) {
	path, size := benchStore(b)
	b.SetBytes(size)
	for b.Loop() {
		if r, err := Verify(context.Background(), path); err != nil || len(r.Problems) > 0 {
			b.Fatal(err, r.Problems)
		}
	}
}
