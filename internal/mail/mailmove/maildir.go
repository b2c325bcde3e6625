// Package mailmove moves mail between the store and the formats other servers and mail
// programs keep it in: Maildir (Maildir++ dot-folders and Dovecot's nested LAYOUT=fs, with
// Dovecot's dovecot-uidlist and dovecot-keywords) and mbox (mboxrd and mboxo). It is
// `petrel import` and `petrel export`.
//
// A source is read into Folders first (names, UIDs, flags, dates and where each message's
// bytes are), so that the import can decide per folder whether UIDs can be kept before it
// writes anything; message bytes are read one message at a time while appending.
package mailmove

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"petrel/internal/store"
)

// Folder is one mailbox of a source.
type Folder struct {
	Name string // store mailbox name: "INBOX" or "/"-separated levels
	// UIDValidity and UIDNext come from a dovecot-uidlist; 0 when the source has none.
	UIDValidity uint32
	UIDNext     uint32
	Messages    []Message // messages with a UID first, in UID order, then the others
}

// Message is one message of a source folder.
type Message struct {
	UID   uint32 // from dovecot-uidlist; 0 when unknown
	Flags []string
	Date  time.Time // received date (INTERNALDATE); zero: unknown
	// Open returns the message's bytes as the source has them (LF or CRLF line ends).
	Open func() (io.ReadCloser, error)
	// Name says where the message is, for messages to the operator.
	Name string
}

// Maildir flags (https://cr.yp.to/proto/maildir.html, "info"): the letters Dovecot and
// others write after ":2,"; lower-case letters are keywords numbered in dovecot-keywords.
var maildirFlags = map[byte]string{
	'D': store.FlagDraft,
	'F': store.FlagFlagged,
	'P': "$Forwarded", // "passed": resent/forwarded; IMAP has the $Forwarded keyword (RFC 5788)
	'R': store.FlagAnswered,
	'S': store.FlagSeen,
	'T': store.FlagDeleted,
}

// ReadMaildir reads a Maildir tree: the root is INBOX; folders are Maildir++ dot-folders
// (".Work.Sub") or, in Dovecot's LAYOUT=fs, nested directories ("Work/Sub") that have a
// cur or new directory. Folder names on disk are IMAP modified UTF-7 (RFC 3501 §5.1.3), as
// Dovecot writes them, and are decoded.
func ReadMaildir(root string) ([]Folder, error) {
	if !isMaildir(root) {
		return nil, fmt.Errorf("%s is not a Maildir (no cur or new directory)", root)
	}
	inbox, err := readMaildirFolder(root, store.Inbox)
	if err != nil {
		return nil, err
	}
	folders := []Folder{inbox}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || name == "cur" || name == "new" || name == "tmp" {
			continue
		}
		dir := filepath.Join(root, name)
		if strings.HasPrefix(name, ".") {
			if name == "." || name == ".." || !isMaildir(dir) {
				continue
			}
			// Maildir++: ".Work.Sub" is Work/Sub.
			f, err := readMaildirFolder(dir, folderName(strings.Split(name[1:], ".")))
			if err != nil {
				return nil, err
			}
			folders = append(folders, f)
			continue
		}
		// LAYOUT=fs: every directory below the root with a cur or new directory.
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				return nil
			}
			if base := d.Name(); base == "cur" || base == "new" || base == "tmp" {
				return fs.SkipDir
			}
			if !isMaildir(path) {
				return nil
			}
			rel, _ := filepath.Rel(root, path)
			f, err := readMaildirFolder(path, folderName(strings.Split(filepath.ToSlash(rel), "/")))
			if err != nil {
				return err
			}
			folders = append(folders, f)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return folders, nil
}

// folderName turns the levels of an on-disk name into a store mailbox name.
func folderName(levels []string) string {
	for i, l := range levels {
		levels[i] = decodeMUTF7(l)
	}
	name := strings.Join(levels, store.Separator)
	if strings.EqualFold(levels[0], store.Inbox) {
		name = store.Inbox + name[len(levels[0]):]
	}
	return name
}

func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// uidlist is what a dovecot-uidlist says: the folder's UIDVALIDITY and next UID, and the
// UID of each message by the base of its file name (before ":2,").
type uidlist struct {
	validity, next uint32
	uids           map[string]uint32
}

// readUIDList reads Dovecot's dovecot-uidlist (versions 1 and 3; see Dovecot's
// src/lib-storage/index/maildir/maildir-uidlist.c): a header line, then one line per
// message, "UID [extensions] :filename" (v3) or "UID filename" (v1). A missing file is no
// error: the folder then has no UIDs to keep.
func readUIDList(dir string) (*uidlist, error) {
	f, err := os.Open(filepath.Join(dir, "dovecot-uidlist"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return nil, fmt.Errorf("%s: empty", f.Name())
	}
	l := &uidlist{uids: map[string]uint32{}}
	header := strings.Fields(sc.Text())
	if len(header) == 0 {
		return nil, fmt.Errorf("%s: no header", f.Name())
	}
	version := header[0]
	switch version {
	case "1":
		if len(header) < 3 {
			return nil, fmt.Errorf("%s: bad header %q", f.Name(), sc.Text())
		}
		l.validity, err = parseUint32(header[1])
		if err == nil {
			l.next, err = parseUint32(header[2])
		}
	case "3":
		for _, h := range header[1:] {
			switch {
			case strings.HasPrefix(h, "V"):
				l.validity, err = parseUint32(h[1:])
			case strings.HasPrefix(h, "N"):
				l.next, err = parseUint32(h[1:])
			}
			if err != nil {
				return nil, fmt.Errorf("%s: bad header %q", f.Name(), sc.Text())
			}
		}
	default:
		return nil, fmt.Errorf("%s: unknown version %q", f.Name(), version)
	}
	if err != nil || l.validity == 0 {
		return nil, fmt.Errorf("%s: bad header %q", f.Name(), sc.Text())
	}
	for sc.Scan() {
		line := sc.Text()
		uidText, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		uid, err := parseUint32(uidText)
		if err != nil || uid == 0 || uid == math.MaxUint32 { // UIDs are 1 to 2^32-2: UIDNEXT must fit
			return nil, fmt.Errorf("%s: bad line %q", f.Name(), line)
		}
		var name string
		if version == "1" {
			name = strings.TrimSpace(rest)
		} else {
			// Extensions come before " :" and never contain it; the file name follows.
			i := strings.Index(" "+rest, " :")
			if i < 0 {
				return nil, fmt.Errorf("%s: bad line %q", f.Name(), line)
			}
			name = rest[i+1:]
		}
		l.uids[maildirBase(name)] = uid
		l.next = max(l.next, uid+1)
	}
	return l, sc.Err()
}

func parseUint32(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

// maildirBase is the unique part of a Maildir file name, without the ":2,..." info.
func maildirBase(name string) string {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return name[:i]
	}
	return name
}

// readKeywords reads Dovecot's dovecot-keywords: "N keyword" lines, N numbering the
// letters a-z of Maildir info.
func readKeywords(dir string) (map[byte]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "dovecot-keywords"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	kw := map[byte]string{}
	for _, line := range strings.Split(string(b), "\n") {
		n, word, ok := strings.Cut(strings.TrimSpace(line), " ")
		i, err := strconv.Atoi(n)
		if !ok || err != nil || i < 0 || i >= 26 || word == "" {
			continue
		}
		kw['a'+byte(i)] = word
	}
	return kw, nil
}

// readMaildirFolder lists one folder's messages with their UIDs, flags and dates.
func readMaildirFolder(dir, name string) (Folder, error) {
	f := Folder{Name: name}
	ul, err := readUIDList(dir)
	if err != nil {
		return f, err
	}
	if ul != nil {
		f.UIDValidity, f.UIDNext = ul.validity, ul.next
	}
	keywords, err := readKeywords(dir)
	if err != nil {
		return f, err
	}
	var withUID, without []Message
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return f, err
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			path := filepath.Join(dir, sub, e.Name())
			info, err := e.Info()
			if err != nil {
				return f, err
			}
			m := Message{Name: path, Date: info.ModTime(), Open: func() (io.ReadCloser, error) { return os.Open(path) }}
			// Dovecot keeps the received date in the file's mtime.
			if sub == "cur" {
				m.Flags = infoFlags(e.Name(), keywords)
			}
			if ul != nil {
				m.UID = ul.uids[maildirBase(e.Name())]
			}
			if m.UID != 0 {
				withUID = append(withUID, m)
			} else {
				without = append(without, m)
			}
		}
	}
	slices.SortFunc(withUID, func(a, b Message) int { return int(int64(a.UID) - int64(b.UID)) })
	// Messages without UIDs in the order they arrived: Maildir names start with the time.
	slices.SortStableFunc(without, func(a, b Message) int { return a.Date.Compare(b.Date) })
	f.Messages = append(withUID, without...)
	return f, nil
}

// infoFlags reads the flags of a Maildir file name's ":2," info.
func infoFlags(name string, keywords map[byte]string) []string {
	i := strings.LastIndex(name, ":2,")
	if i < 0 {
		return nil
	}
	var flags []string
	for _, c := range []byte(name[i+3:]) {
		if f, ok := maildirFlags[c]; ok {
			flags = append(flags, f)
		} else if kw, ok := keywords[c]; ok {
			flags = append(flags, kw)
		}
	}
	return flags
}
