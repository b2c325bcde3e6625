package mailmove

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"petrel/internal/store"
)

// BenchmarkImportMaildir imports a Maildir of 2,000 messages of about 4 KB with a
// dovecot-uidlist (UIDs kept) into a new account, the way `petrel import maildir` does:
// "batched" in runs of AppendBatch, "per-message" through a store without it (one Append,
// so one commit, per message, as before AppendBatch). Reported: messages/s and MB/s of
// message bytes.
func BenchmarkImportMaildir(b *testing.B) {
	const n = 2000
	root := b.TempDir()
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(root, sub), 0o700)
	}
	var uidlist strings.Builder
	uidlist.WriteString("3 V1700000000 N2001 Gx\n")
	bytes := 0
	for i := range n {
		name := fmt.Sprintf("%d.M%d.bench", 1700000000+i, i)
		body := fmt.Sprintf("From: a@example.net\nSubject: %d\nMessage-ID: <%d@example.net>\n\n%s", i, i, strings.Repeat("line of text in the body\n", 160))
		bytes += len(body)
		os.WriteFile(filepath.Join(root, "cur", name+":2,S"), []byte(body), 0o600)
		fmt.Fprintf(&uidlist, "%d :%s\n", i+1, name)
	}
	os.WriteFile(filepath.Join(root, "dovecot-uidlist"), []byte(uidlist.String()), 0o600)
	folders, err := ReadMaildir(root)
	if err != nil {
		b.Fatal(err)
	}
	for _, batched := range []bool{true, false} {
		name := "batched"
		if !batched {
			name = "per-message"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(bytes))
			for b.Loop() {
				b.StopTimer()
				var st store.Store
				st, a := openStore(b)
				if !batched {
					st = withoutBatch{st}
				}
				b.StartTimer()
				if _, err := Import(context.Background(), st, a.ID, folders, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// withoutBatch hides a store's AppendBatch.
type withoutBatch struct{ store.Store }
