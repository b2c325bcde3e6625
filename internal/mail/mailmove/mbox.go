package mailmove

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"petrel/internal/store"
)

// MboxFormat says how a body line that begins with "From " was quoted by the program that
// wrote an mbox (https://www.loc.gov/preservation/digital/formats/fdd/fdd000383.shtml and
// RFC 4155): mboxrd quotes ">*From " with one more ">", so reading removes one; mboxo
// quotes only "From ", so ">From " is read as "From " (the original could have been either:
// mboxo cannot tell).
type MboxFormat int

const (
	MboxRD MboxFormat = iota
	MboxO
)

// A "From " line that separates messages: "From sender date", where the date is asctime's
// ("Mon Jan  2 15:04:05 2006"), sometimes with a zone. A body line starting with "From "
// that a sloppy writer left unquoted is taken for a separator only if it looks like this
// and follows an empty line. Compiled at first use: most runs of the binary never read an mbox.
var fromLine = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^From \S* +([A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]?\d \d\d:\d\d(:\d\d)?( [A-Z]{3,4}| [+-]\d{4})? \d{4}|[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]?\d \d\d:\d\d(:\d\d)? \d{4}( [+-]\d{4})?)\s*$`)
})

// fromDate reads the date of a separator line; zero if it does not parse.
func fromDate(line string) time.Time {
	m := fromLine().FindStringSubmatch(line)
	if m == nil {
		return time.Time{}
	}
	s := strings.Join(strings.Fields(m[1]), " ")
	for _, layout := range []string{"Mon Jan 2 15:04:05 2006", "Mon Jan 2 15:04:05 MST 2006", "Mon Jan 2 15:04:05 -0700 2006",
		"Mon Jan 2 15:04:05 2006 -0700", "Mon Jan 2 15:04 2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// mboxLocal are header fields mail programs write into an mbox for their own state; the
// import turns them into flags and leaves them out of the stored message, and the export
// writes them back.
var mboxLocal = []string{"status", "x-status", "x-keywords"}

// ReadMbox indexes an mbox file as one folder: where each message is, its received date
// (from its "From " line) and its flags (Status, X-Status, X-Keywords). The messages are
// read again, one at a time, when the import opens them.
func ReadMbox(path, name string, format MboxFormat) (Folder, error) {
	f := Folder{Name: name}
	file, err := os.Open(path)
	if err != nil {
		return f, err
	}
	defer file.Close()
	r := bufio.NewReaderSize(file, 64<<10)
	var (
		off       int64
		cur       *Message
		start     int64 // of the current message's first line after "From "
		inHeader  bool
		prevEmpty = true
		lastLen   int64 // length of the previous line, to drop the empty line before a separator
		field     string
	)
	finish := func(end int64) {
		if cur == nil {
			return
		}
		if prevEmpty && end-lastLen >= start {
			end -= lastLen // the empty line that belongs to the separator
		}
		s, e := start, end
		cur.Open = func() (io.ReadCloser, error) { return openMboxMessage(path, s, e, format) }
		f.Messages = append(f.Messages, *cur)
		cur = nil
	}
	for {
		line, err := r.ReadString('\n')
		if len(line) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return f, err
		}
		n := int64(len(line))
		if strings.HasPrefix(line, "From ") && prevEmpty {
			if t := fromDate(strings.TrimRight(line, "\r\n")); !t.IsZero() || off == 0 {
				finish(off)
				cur = &Message{Date: t, Name: fmt.Sprintf("%s, message %d", path, len(f.Messages)+1)}
				start, inHeader, field = off+n, true, ""
				off += n
				prevEmpty, lastLen = false, n
				continue
			}
		}
		if cur == nil {
			if strings.TrimSpace(line) != "" {
				return f, fmt.Errorf("%s is not an mbox: it does not begin with a \"From \" line", path)
			}
		}
		trimmed := strings.TrimRight(line, "\r\n")
		if cur != nil && inHeader {
			switch {
			case trimmed == "":
				inHeader = false
			case trimmed[0] == ' ' || trimmed[0] == '\t':
				cur.Flags = append(cur.Flags, mboxFlags(field, trimmed)...)
			default:
				k, v, _ := strings.Cut(trimmed, ":")
				field = strings.ToLower(strings.TrimSpace(k))
				cur.Flags = append(cur.Flags, mboxFlags(field, v)...)
			}
		}
		prevEmpty, lastLen = trimmed == "", n
		off += n
	}
	finish(off)
	return f, nil
}

// mboxFlags reads the flags in one mbox-local header field.
func mboxFlags(field, value string) []string {
	var flags []string
	switch field {
	case "status":
		if strings.Contains(value, "R") {
			flags = append(flags, store.FlagSeen)
		}
	case "x-status":
		for _, c := range value {
			switch c {
			case 'A':
				flags = append(flags, store.FlagAnswered)
			case 'F':
				flags = append(flags, store.FlagFlagged)
			case 'T':
				flags = append(flags, store.FlagDraft)
			case 'D':
				flags = append(flags, store.FlagDeleted)
			}
		}
	case "x-keywords":
		for _, k := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			flags = append(flags, k)
		}
	}
	return flags
}

// openMboxMessage reads one message of an mbox: the From-quoting undone and the mbox-local
// header fields left out.
func openMboxMessage(path string, start, end int64, format MboxFormat) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw := make([]byte, end-start)
	if _, err := f.ReadAt(raw, start); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(len(raw))
	inHeader, skipping := true, false
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		var line []byte
		if i < 0 {
			line, raw = raw, nil
		} else {
			line, raw = raw[:i+1], raw[i+1:]
		}
		if inHeader {
			trimmed := bytes.TrimRight(line, "\r\n")
			switch {
			case len(trimmed) == 0:
				inHeader = false
			case trimmed[0] == ' ' || trimmed[0] == '\t':
				if skipping {
					continue
				}
			default:
				k, _, _ := bytes.Cut(trimmed, []byte(":"))
				skipping = false
				for _, name := range mboxLocal {
					if strings.EqualFold(strings.TrimSpace(string(k)), name) {
						skipping = true
					}
				}
				if skipping {
					continue
				}
			}
		}
		out.Write(unquoteFrom(line, format))
	}
	return io.NopCloser(&out), nil
}

// unquoteFrom undoes the quoting of a "From " line in a body.
func unquoteFrom(line []byte, format MboxFormat) []byte {
	if len(line) == 0 || line[0] != '>' {
		return line
	}
	rest := bytes.TrimLeft(line, ">")
	if !bytes.HasPrefix(rest, []byte("From ")) {
		return line
	}
	if format == MboxO && len(line)-len(rest) != 1 {
		return line
	}
	return line[1:]
}

// quoteFrom quotes a body line for mboxrd: ">*From " gets one more ">".
func quoteFrom(line []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From "))
}
