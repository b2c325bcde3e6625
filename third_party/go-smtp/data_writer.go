package smtp

import (
	"bufio"
	"bytes"
)

// dataWriter dot-stuffs a message for DATA exactly as the DotWriter of
// net/textproto does: a dot at the beginning of a line is doubled, a bare LF
// becomes CRLF, and Close ends the data with ".\r\n" (after a CRLF if the
// last line is not complete). It writes the bytes between line breaks in
// one copy instead of one WriteByte at a time.
type dataWriter struct {
	c     *Client
	w     *bufio.Writer
	state int
}

// States of dataWriter, as in net/textproto.
const (
	wstateBegin     = iota // initial state; must be zero
	wstateBeginLine        // beginning of line
	wstateCR               // wrote \r (possibly at end of line)
	wstateData             // writing data in middle of line
)

func (d *dataWriter) Write(b []byte) (n int, err error) {
	for n < len(b) {
		if d.state == wstateData {
			// Copy up to the next CR or LF: nothing before it changes.
			run := b[n:]
			if i := bytes.IndexByte(run, '\n'); i >= 0 {
				run = run[:i]
			}
			if i := bytes.IndexByte(run, '\r'); i >= 0 {
				run = run[:i]
			}
			if len(run) > 0 {
				k, err := d.w.Write(run)
				n += k
				if err != nil {
					return n, err
				}
				continue
			}
		}

		c := b[n]
		switch d.state {
		case wstateBegin, wstateBeginLine:
			d.state = wstateData
			if c == '.' {
				// escape leading dot
				d.w.WriteByte('.')
			}
			if c == '\r' {
				d.state = wstateCR
			}
			if c == '\n' {
				d.w.WriteByte('\r')
				d.state = wstateBeginLine
			}
		case wstateData:
			if c == '\r' {
				d.state = wstateCR
			}
			if c == '\n' {
				d.w.WriteByte('\r')
				d.state = wstateBeginLine
			}
		case wstateCR:
			d.state = wstateData
			if c == '\n' {
				d.state = wstateBeginLine
			}
		}
		if err = d.w.WriteByte(c); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (d *dataWriter) Close() error {
	if d.c.data == d {
		d.c.data = nil
	}
	switch d.state {
	default:
		d.w.WriteByte('\r')
		fallthrough
	case wstateCR:
		d.w.WriteByte('\n')
		fallthrough
	case wstateBeginLine:
		d.w.Write([]byte(".\r\n"))
	}
	return d.w.Flush()
}
