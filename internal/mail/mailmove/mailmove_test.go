package mailmove

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

func openStore(t testing.TB) (store.Store, store.Account) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "petrel.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if err := st.AddDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	a, err := st.AddAccount(ctx, "alice@example.org", store.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	return st, a
}

// stored is a mailbox's content as "UID flags | body" lines, for comparisons.
func stored(t *testing.T, st store.Store, accountID int64, name string, withUIDs bool) []string {
	t.Helper()
	ctx := context.Background()
	mb, err := st.Mailbox(ctx, accountID, name)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := st.Messages(ctx, mb.ID, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		b, err := readBlob(ctx, st, m.BlobID)
		if err != nil {
			t.Fatal(err)
		}
		s := fmt.Sprintf("%v %s | %q", m.Flags, m.InternalDate.UTC().Format(time.RFC3339), b)
		if withUIDs {
			s = fmt.Sprintf("%d ", m.UID) + s
		}
		out = append(out, s)
	}
	return out
}

const mboxText = `From alice@example.org Mon Mar  3 10:00:00 2025
From: alice@example.org
Subject: one
Status: RO
X-Status: AF
X-Keywords: $Label1

Hello
>From the quoted line
>>From twice quoted
From an unquoted line that is not a separator

From bob@example.org Tue Mar  4 11:30:00 2025
From: bob@example.org
Subject: two

From here on the body starts with From
but it follows an empty line and has no date.

From carol@example.org Wed Mar  5 12:00:00 2025
Subject: three

last
`

func TestReadMbox(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.mbox")
	os.WriteFile(path, []byte(mboxText), 0o600)
	for _, tc := range []struct {
		format MboxFormat
		quoted string
	}{
		{MboxRD, "From the quoted line\n>From twice quoted\n"},
		{MboxO, "From the quoted line\n>>From twice quoted\n"},
	} {
		f, err := ReadMbox(path, "INBOX", tc.format)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Messages) != 3 {
			t.Fatalf("%d messages, want 3", len(f.Messages))
		}
		m := f.Messages[0]
		if want := []string{store.FlagSeen, store.FlagAnswered, store.FlagFlagged, "$Label1"}; !slices.Equal(m.Flags, want) {
			t.Errorf("flags %v, want %v", m.Flags, want)
		}
		if want := time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC); !m.Date.Equal(want) {
			t.Errorf("date %v, want %v", m.Date, want)
		}
		body := read(t, m)
		want := "From: alice@example.org\nSubject: one\n\nHello\n" + tc.quoted + "From an unquoted line that is not a separator\n"
		if body != want {
			t.Errorf("format %d: first message\n%q\nwant\n%q", tc.format, body, want)
		}
		if got := read(t, f.Messages[1]); !strings.HasSuffix(got, "has no date.\n") || !strings.Contains(got, "\nFrom here on") {
			t.Errorf("second message %q", got)
		}
		if got := read(t, f.Messages[2]); got != "Subject: three\n\nlast\n" {
			t.Errorf("third message %q", got)
		}
	}
	os.WriteFile(path, []byte("Subject: not an mbox\n"), 0o600)
	if _, err := ReadMbox(path, "INBOX", MboxRD); err == nil {
		t.Error("a file without a From line was read as an mbox")
	}
}

func read(t *testing.T, m Message) string {
	t.Helper()
	rc, err := m.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// writeMaildir makes a Maildir++ tree the way Dovecot leaves it: uidlist with gaps, a
// keywords file, a dot-folder with a modified UTF-7 name, and a message in new/ that
// Dovecot has not numbered yet.
func writeMaildir(t *testing.T) string {
	root := t.TempDir()
	for _, d := range []string{"", ".Entw&APw-rfe", ".Work.Sub"} {
		for _, sub := range []string{"cur", "new", "tmp"} {
			os.MkdirAll(filepath.Join(root, d, sub), 0o700)
		}
	}
	msg := func(dir, sub, name, subject string, date time.Time) {
		p := filepath.Join(root, dir, sub, name)
		os.WriteFile(p, []byte("Subject: "+subject+"\nFrom: x@example.net\n\nbody of "+subject+"\n"), 0o600)
		os.Chtimes(p, date, date)
	}
	d := time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)
	msg("", "cur", "1000.M1.host,S=50:2,RS", "a", d)
	msg("", "cur", "1001.M2.host,S=50:2,Fab", "b", d.Add(time.Hour))
	msg("", "cur", "1002.M3.host:2,", "c", d.Add(2*time.Hour))
	msg("", "new", "1003.M4.host", "d", d.Add(3*time.Hour))
	os.WriteFile(filepath.Join(root, "dovecot-uidlist"), []byte("3 V1700000000 N12 Gabc\n3 :1000.M1.host,S=50\n7 W51 :1001.M2.host,S=50\n9 :1002.M3.host\n"), 0o600)
	os.WriteFile(filepath.Join(root, "dovecot-keywords"), []byte("0 $Label1\n1 Work\n"), 0o600)
	msg(".Entw&APw-rfe", "cur", "2000.M1.host:2,D", "draft", d)
	msg(".Work.Sub", "cur", "3000.M1.host:2,T", "sub", d)
	return root
}

// TestImportMaildir runs the import with AppendBatch and through a store without it.
func TestImportMaildir(t *testing.T) {
	t.Run("batched", func(t *testing.T) { testImportMaildir(t, false) })
	t.Run("per-message", func(t *testing.T) { testImportMaildir(t, true) })
}

func testImportMaildir(t *testing.T, perMessage bool) {
	root := writeMaildir(t)
	folders, err := ReadMaildir(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range folders {
		names = append(names, f.Name)
	}
	slices.Sort(names)
	if want := []string{"Entwürfe", "INBOX", "Work/Sub"}; !slices.Equal(names, want) {
		t.Fatalf("folders %v, want %v", names, want)
	}
	st, a := openStore(t)
	if perMessage {
		st = withoutBatch{st}
	}
	ctx := context.Background()
	res, err := Import(ctx, st, a.ID, folders, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := stored(t, st, a.ID, store.Inbox, true)
	want := []string{
		`3 [\Answered \Seen] 2024-05-01T08:00:00Z | "Subject: a\r\nFrom: x@example.net\r\n\r\nbody of a\r\n"`,
		`7 [$Label1 Work \Flagged] 2024-05-01T09:00:00Z | "Subject: b\r\nFrom: x@example.net\r\n\r\nbody of b\r\n"`,
		`9 [] 2024-05-01T10:00:00Z | "Subject: c\r\nFrom: x@example.net\r\n\r\nbody of c\r\n"`,
		`12 [] 2024-05-01T11:00:00Z | "Subject: d\r\nFrom: x@example.net\r\n\r\nbody of d\r\n"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("INBOX:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	inbox, _ := st.Mailbox(ctx, a.ID, store.Inbox)
	if inbox.UIDValidity != 1700000000 || inbox.UIDNext != 13 {
		t.Errorf("INBOX UIDVALIDITY %d UIDNEXT %d, want 1700000000 13", inbox.UIDValidity, inbox.UIDNext)
	}
	if acct, _ := st.AccountByID(ctx, a.ID); acct.POP3UIDL != store.UIDLDovecot {
		t.Errorf("POP3 UIDL format %q after an import with UIDs", acct.POP3UIDL)
	}
	if got := stored(t, st, a.ID, "Work/Sub", false); len(got) != 1 || !strings.HasPrefix(got[0], `[\Deleted]`) {
		t.Errorf("Work/Sub: %v", got)
	}
	if subs, _ := st.Subscriptions(ctx, a.ID); !slices.Contains(subs, "Entwürfe") {
		t.Errorf("subscriptions %v", subs)
	}
	total := 0
	for _, r := range res {
		total += r.Imported
	}
	if total != 6 {
		t.Errorf("imported %d, want 6: %+v", total, res)
	}

	// A rerun (as after a kill) adds nothing.
	res, err = Import(ctx, st, a.ID, folders, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Imported != 0 {
			t.Errorf("rerun imported %d into %s", r.Imported, r.Folder)
		}
	}
	if again := stored(t, st, a.ID, store.Inbox, true); !slices.Equal(again, want) {
		t.Errorf("INBOX after the rerun:\n%s", strings.Join(again, "\n"))
	}
}

// TestImportResume: an import stopped after some messages (here: a first run over a part
// of the source) and run again over the whole gives every message once, with and without
// UIDs, and a source that holds one message twice keeps both copies.
func TestImportResume(t *testing.T) {
	dir := t.TempDir()
	var mbox strings.Builder
	for i := range 6 {
		subject := fmt.Sprint(i)
		if i == 5 {
			subject = "4" // the same message twice
		}
		fmt.Fprintf(&mbox, "From x@example.net Mon Mar  3 10:00:0%d 2025\nSubject: %s\n\nbody\n\n", min(i, 4), subject)
	}
	path := filepath.Join(dir, "in.mbox")
	os.WriteFile(path, []byte(mbox.String()), 0o600)
	f, err := ReadMbox(path, "Archive/2025", MboxRD)
	if err != nil {
		t.Fatal(err)
	}
	st, a := openStore(t)
	ctx := context.Background()
	part := f
	part.Messages = f.Messages[:3]
	if _, err := Import(ctx, st, a.ID, []Folder{part}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := Import(ctx, st, a.ID, []Folder{f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Imported != 3 || res[0].Skipped != 3 {
		t.Errorf("resumed run: %+v, want 3 imported, 3 skipped", res[0])
	}
	if got := stored(t, st, a.ID, "Archive/2025", false); len(got) != 6 {
		t.Errorf("%d messages after the resumed run, want 6:\n%s", len(got), strings.Join(got, "\n"))
	}

	// With UIDs: a run stopped after UID 3 of 1, 3, 7.
	root := writeMaildir(t)
	folders, err := ReadMaildir(root)
	if err != nil {
		t.Fatal(err)
	}
	var inbox Folder
	for _, f := range folders {
		if f.Name == store.Inbox {
			inbox = f
		}
	}
	st2, b := openStore(t)
	first := inbox
	first.Messages = inbox.Messages[:1]
	first.UIDNext = 0 // the run did not get to its end
	if _, err := Import(ctx, st2, b.ID, []Folder{first}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(ctx, st2, b.ID, []Folder{inbox}, nil); err != nil {
		t.Fatal(err)
	}
	var uids []string
	for _, s := range stored(t, st2, b.ID, store.Inbox, true) {
		uids = append(uids, strings.Fields(s)[0])
	}
	if want := []string{"3", "7", "9", "12"}; !slices.Equal(uids, want) {
		t.Errorf("UIDs after the resumed run %v, want %v", uids, want)
	}
}

// TestExportImport: an account exported as Maildir or mbox and imported into another
// account gives the same messages, flags and dates (and, from Maildir, the same UIDs).
func TestExportImport(t *testing.T) {
	st, a := openStore(t)
	ctx := context.Background()
	folders, err := ReadMaildir(writeMaildir(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Import(ctx, st, a.ID, folders, nil); err != nil {
		t.Fatal(err)
	}
	// A body line that starts with From, which mbox must quote.
	body := "Subject: from\r\n\r\nFrom me\r\n>From you\r\n"
	if _, err := st.Append(ctx, a.ID, "INBOX", &store.AppendMessage{Body: strings.NewReader(body), Size: int64(len(body)),
		Flags: []string{store.FlagSeen}, InternalDate: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"maildir", "mbox"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			var read []Folder
			if kind == "maildir" {
				if _, err := ExportMaildir(ctx, st, a.ID, dir); err != nil {
					t.Fatal(err)
				}
				if read, err = ReadMaildir(dir); err != nil {
					t.Fatal(err)
				}
			} else {
				if _, err := ExportMbox(ctx, st, a.ID, dir); err != nil {
					t.Fatal(err)
				}
				for _, name := range []string{"INBOX", "Entwürfe", "Work/Sub"} {
					f, err := ReadMbox(filepath.Join(dir, name+".mbox"), name, MboxRD)
					if err != nil {
						t.Fatal(err)
					}
					read = append(read, f)
				}
			}
			b, err := st.AddAccount(ctx, "bob-"+kind+"@example.org", store.Credentials{})
			if err != nil {
				t.Fatal(err)
			}
			// The UIDVALIDITYs belong to alice's mailboxes in this store: a Maildir import
			// here keeps the content but not the UIDs.
			if _, err := Import(ctx, st, b.ID, read, nil); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"INBOX", "Entwürfe", "Work/Sub"} {
				want := stored(t, st, a.ID, name, false)
				got := stored(t, st, b.ID, name, false)
				if !slices.Equal(got, want) {
					t.Errorf("%s after export and import:\n%s\nwant\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
		})
	}
	// Into another store, a Maildir export keeps the UIDs too.
	dir := t.TempDir()
	if _, err := ExportMaildir(ctx, st, a.ID, dir); err != nil {
		t.Fatal(err)
	}
	read, err := ReadMaildir(dir)
	if err != nil {
		t.Fatal(err)
	}
	st2, c := openStore(t)
	if _, err := Import(ctx, st2, c.ID, read, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := stored(t, st2, c.ID, "INBOX", true), stored(t, st, a.ID, "INBOX", true); !slices.Equal(got, want) {
		t.Errorf("INBOX in another store:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestMUTF7(t *testing.T) {
	for _, tc := range []struct{ enc, dec string }{
		{"Entw&APw-rfe", "Entwürfe"}, {"a&-b", "a&b"}, {"&ZeVnLIqe-", "日本語"}, {"plain", "plain"},
	} {
		if got := decodeMUTF7(tc.enc); got != tc.dec {
			t.Errorf("decode %q = %q, want %q", tc.enc, got, tc.dec)
		}
		if got := encodeMUTF7(tc.dec); got != tc.enc {
			t.Errorf("encode %q = %q, want %q", tc.dec, got, tc.enc)
		}
	}
	if got := decodeMUTF7("bad&!!-"); got != "bad&!!-" {
		t.Errorf("invalid name decoded to %q", got)
	}
}
