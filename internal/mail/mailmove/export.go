package mailmove

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"petrel/internal/lib/safefile"
	"petrel/internal/store"
)

// Exported is what an export wrote for one mailbox.
type Exported struct {
	Folder   string
	Messages int
	Path     string
}

// eachMessage calls fn for every message of every mailbox of an account, with its body.
func eachMailbox(ctx context.Context, st store.Store, accountID int64, fn func(mb store.Mailbox, msgs []store.Message) error) error {
	boxes, err := st.Mailboxes(ctx, accountID)
	if err != nil {
		return err
	}
	for _, mb := range boxes {
		msgs, err := st.Messages(ctx, mb.ID, store.Filter{})
		if err != nil {
			return err
		}
		if err := fn(mb, msgs); err != nil {
			return fmt.Errorf("%s: %w", mb.Name, err)
		}
	}
	return nil
}

func readBlob(ctx context.Context, st store.Store, id int64) ([]byte, error) {
	rc, err := st.OpenBlob(ctx, id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// toLF turns the stored CRLF line ends into the LF that Maildir and mbox files use.
func toLF(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// ExportMaildir writes an account as a Maildir++ tree under dir (INBOX at the top, other
// mailboxes as dot-folders with modified UTF-7 names), in the form Dovecot reads: flags in
// the ":2," info, keywords numbered in dovecot-keywords, the received date as the file's
// mtime, and a dovecot-uidlist with the mailbox's UIDVALIDITY and UIDs, so that Dovecot
// (or petrel import) gives clients the same UIDs.
func ExportMaildir(ctx context.Context, st store.Store, accountID int64, dir string) ([]Exported, error) {
	var out []Exported
	err := eachMailbox(ctx, st, accountID, func(mb store.Mailbox, msgs []store.Message) error {
		folder := dir
		if mb.Name != store.Inbox {
			levels := strings.Split(mb.Name, store.Separator)
			for i, l := range levels {
				levels[i] = encodeMUTF7(l)
			}
			folder = filepath.Join(dir, "."+strings.Join(levels, "."))
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(folder, sub), 0o700); err != nil {
				return err
			}
		}
		// Keywords get the letters a-z in the mailbox's order; Maildir has no more letters.
		letters := map[string]byte{}
		var kwFile strings.Builder
		for i, kw := range mb.Keywords {
			if i == 26 {
				break
			}
			letters[strings.ToLower(kw)] = 'a' + byte(i)
			fmt.Fprintf(&kwFile, "%d %s\n", i, kw)
		}
		if kwFile.Len() > 0 {
			if err := safefile.WriteAtomic(filepath.Join(folder, "dovecot-keywords"), []byte(kwFile.String()), 0o600); err != nil {
				return err
			}
		}
		var uidlist strings.Builder
		guid := make([]byte, 16)
		rand.Read(guid)
		fmt.Fprintf(&uidlist, "3 V%d N%d G%s\n", mb.UIDValidity, mb.UIDNext, hex.EncodeToString(guid))
		for _, m := range msgs {
			body, err := readBlob(ctx, st, m.BlobID)
			if err != nil {
				return err
			}
			base := fmt.Sprintf("%d.P%dQ%d.petrel", m.InternalDate.Unix(), mb.UIDValidity, m.UID)
			name := base + ":2," + infoLetters(m.Flags, letters)
			path := filepath.Join(folder, "cur", name)
			if err := safefile.WriteAtomic(path, toLF(body), 0o600); err != nil {
				return err
			}
			if err := os.Chtimes(path, m.InternalDate, m.InternalDate); err != nil {
				return err
			}
			fmt.Fprintf(&uidlist, "%d :%s\n", m.UID, base)
		}
		if err := safefile.WriteAtomic(filepath.Join(folder, "dovecot-uidlist"), []byte(uidlist.String()), 0o600); err != nil {
			return err
		}
		out = append(out, Exported{Folder: mb.Name, Messages: len(msgs), Path: folder})
		return nil
	})
	return out, err
}

// infoLetters is the ":2," info of a message's flags, in ASCII order as Maildir wants.
func infoLetters(flags []string, keywords map[string]byte) string {
	var b []byte
	for _, f := range flags {
		for c, name := range maildirFlags {
			if strings.EqualFold(f, name) {
				b = append(b, c)
			}
		}
		if c, ok := keywords[strings.ToLower(f)]; ok {
			b = append(b, c)
		}
	}
	slices.Sort(b)
	return string(b)
}

// ExportMbox writes each mailbox of an account into an mboxrd file under dir, NAME.mbox
// (hierarchy levels as directories: "Work/Sub.mbox"). Each message starts with a "From "
// line carrying its received date, has its flags in Status, X-Status and X-Keywords header
// fields (as mutt and Thunderbird read them), its lines LF-terminated, and body lines that
// start with ">*From " quoted with one more ">".
func ExportMbox(ctx context.Context, st store.Store, accountID int64, dir string) ([]Exported, error) {
	var out []Exported
	err := eachMailbox(ctx, st, accountID, func(mb store.Mailbox, msgs []store.Message) error {
		path := filepath.Join(dir, filepath.FromSlash(mb.Name)+".mbox")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, 64<<10)
		for _, m := range msgs {
			body, err := readBlob(ctx, st, m.BlobID)
			if err != nil {
				f.Close()
				return err
			}
			writeMboxMessage(w, m, toLF(body))
		}
		err = w.Flush()
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		out = append(out, Exported{Folder: mb.Name, Messages: len(msgs), Path: path})
		return nil
	})
	return out, err
}

func writeMboxMessage(w *bufio.Writer, m store.Message, body []byte) {
	fmt.Fprintf(w, "From MAILER-DAEMON %s\n", m.InternalDate.UTC().Format(time.ANSIC))
	var status, xstatus string
	var keywords []string
	for _, f := range m.Flags {
		switch f {
		case store.FlagSeen:
			status = "R"
		case store.FlagAnswered:
			xstatus += "A"
		case store.FlagFlagged:
			xstatus += "F"
		case store.FlagDraft:
			xstatus += "T"
		case store.FlagDeleted:
			xstatus += "D"
		default:
			keywords = append(keywords, f)
		}
	}
	inHeader := true
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		var line []byte
		if i < 0 {
			line, body = append(body, '\n'), nil
		} else {
			line, body = body[:i+1], body[i+1:]
		}
		if inHeader && len(line) == 1 {
			// The end of the header section: the flags go last in it.
			fmt.Fprintf(w, "Status: %sO\n", status)
			if xstatus != "" {
				fmt.Fprintf(w, "X-Status: %s\n", xstatus)
			}
			if len(keywords) > 0 {
				fmt.Fprintf(w, "X-Keywords: %s\n", strings.Join(keywords, " "))
			}
			inHeader = false
		}
		if quoteFrom(line) {
			w.WriteByte('>')
		}
		w.Write(line)
	}
	if inHeader { // a message without a body: the flags end its header
		fmt.Fprintf(w, "Status: %sO\n", status)
	}
	w.WriteByte('\n')
}
