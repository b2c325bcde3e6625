package mailmove

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadMbox: any file is read as an mbox or refused, never a crash, and every message it
// finds opens, in both formats, without more bytes than the file has.
func FuzzReadMbox(f *testing.F) {
	f.Add([]byte(mboxText))
	f.Add([]byte("From a Mon Mar  3 10:00:00 2025\nStatus: RO\n X-cont\n\n>>From x\n"))
	f.Add([]byte("From \n\nFrom b Tue Mar  4 11:30 2025 +0100\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "f.mbox")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, format := range []MboxFormat{MboxRD, MboxO} {
			folder, err := ReadMbox(path, "INBOX", format)
			if err != nil {
				continue
			}
			for _, m := range folder.Messages {
				rc, err := m.Open()
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(rc)
				rc.Close()
				if len(b) > len(data) {
					t.Fatalf("message of %d bytes from a file of %d", len(b), len(data))
				}
			}
		}
	})
}

// FuzzUIDList: any dovecot-uidlist is read or refused, never a crash.
func FuzzUIDList(f *testing.F) {
	f.Add([]byte("3 V1700000000 N12 Gabc\n3 :1000.M1.host,S=50\n7 W51 :1001.M2.host,S=50\n"))
	f.Add([]byte("1 1700000000 5\n1 1000.M1.host:2,S\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "dovecot-uidlist"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := readUIDList(dir)
		if err != nil || l == nil {
			return
		}
		for _, uid := range l.uids {
			if uid == 0 || l.next <= uid {
				t.Fatalf("UID %d with next %d", uid, l.next)
			}
		}
	})
}
