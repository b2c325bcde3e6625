package fetch

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"petrel/internal/lib/safefile"
)

// LocalError is a failure of the local side: the archive or the state file could not be
// written or locked. It needs the user's attention (a full disk, permissions), unlike a
// network failure that the next run retries.
type LocalError struct{ Err error }

func (e *LocalError) Error() string { return "local: " + e.Err.Error() }
func (e *LocalError) Unwrap() error { return e.Err }

func local(err error) error {
	if err == nil {
		return nil
	}
	var le *LocalError
	if errors.As(err, &le) {
		return err
	}
	return &LocalError{err}
}

// lockFile takes an exclusive flock on path (created if missing) without waiting.
// The lock goes away with the process, so a killed run never leaves a stale lock.
func lockFile(path string) (unlock func(), err error) {
	unlock, err = safefile.TryLock(path)
	if errors.Is(err, safefile.ErrLocked) {
		return nil, fmt.Errorf("%s is locked: another fetch of this account is running", path)
	}
	return unlock, err
}

// lineWriter converts CRLF line endings to LF (the convention of Maildir and mbox files on
// Unix) and, for mbox, applies mboxrd From-quoting: a line matching ^>*From gets one more ">"
// so that readers can undo it exactly. It works on whole lines: a line is held until its LF
// arrives, except that a very long line is passed on in pieces (such a line cannot need
// quoting decisions beyond its first bytes).
type lineWriter struct {
	w     *bufio.Writer
	quote bool   // mboxrd quoting
	line  []byte // the current line so far
	cont  bool   // line continues a piece already written (not at the start of a line)
	n     int64  // bytes written to w
	last  byte   // last byte written, to know whether the output ends with LF
}

const maxHeldLine = 64 << 10

func (l *lineWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.line = append(l.line, p...)
			if len(l.line) > maxHeldLine && !allQuotes(l.line) {
				// Pass a long line on, holding back a final CR that may start a CRLF.
				keep := 0
				if l.line[len(l.line)-1] == '\r' {
					keep = 1
				}
				if err := l.emit(l.line[:len(l.line)-keep]); err != nil {
					return 0, err
				}
				l.line = append(l.line[:0], l.line[len(l.line)-keep:]...)
				l.cont = true
			}
			return total, nil
		}
		l.line = append(l.line, p[:i+1]...)
		p = p[i+1:]
		line := l.line
		if n := len(line); n >= 2 && line[n-2] == '\r' {
			line = append(line[:n-2], '\n')
		}
		if err := l.emit(line); err != nil {
			return 0, err
		}
		l.line, l.cont = l.line[:0], false
	}
	return total, nil
}

func (l *lineWriter) emit(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if l.quote && !l.cont && needsQuote(b) {
		l.w.WriteByte('>')
		l.n++
	}
	n, err := l.w.Write(b)
	l.n += int64(n)
	l.last = b[len(b)-1]
	return err
}

// finish writes what is held and makes sure the output ends with a line break.
func (l *lineWriter) finish() error {
	if len(l.line) > 0 {
		if err := l.emit(l.line); err != nil {
			return err
		}
		l.line = l.line[:0]
	}
	if l.n > 0 && l.last != '\n' {
		if err := l.emit([]byte{'\n'}); err != nil {
			return err
		}
	}
	return l.w.Flush()
}

// needsQuote reports whether a line matches ^>*From (mboxrd).
func needsQuote(line []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From "))
}

func allQuotes(b []byte) bool {
	return len(bytes.TrimLeft(b, ">")) == 0
}

// copyFile streams a file's content to w.
func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// asctime formats t as the date of an mbox "From " line.
func asctime(t time.Time) string {
	return t.UTC().Format("Mon Jan _2 15:04:05 2006")
}
