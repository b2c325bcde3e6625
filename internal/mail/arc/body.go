package arc

import (
	"bufio"
	"bytes"
	"hash"
	"io"
)

// hashBody writes the canonicalized body read from r into h: simple (RFC 6376
// §3.4.3: trailing empty lines removed, an empty body is one CRLF) or relaxed
// (§3.4.4: also white space runs as one space, none at line ends, and an
// empty body is empty). Bare LFs end lines as CRLF does. It streams: memory
// holds one line and a count of pending empty lines.
func hashBody(h hash.Hash, r io.Reader, relaxed bool) error {
	br := bufio.NewReaderSize(r, 16<<10)
	empty := 0 // empty lines seen and not yet written: trailing ones are dropped
	any := false
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			line = append(line, chunk...)
			continue
		}
		if len(line) > 0 {
			line = append(line, chunk...)
			chunk = line
		}
		if len(chunk) > 0 {
			content := bytes.TrimSuffix(bytes.TrimSuffix(chunk, []byte("\n")), []byte("\r"))
			if relaxed {
				content = relaxLine(content)
			}
			if len(content) == 0 && chunk[len(chunk)-1] == '\n' {
				empty++
			} else if len(content) > 0 || chunk[len(chunk)-1] != '\n' {
				for ; empty > 0; empty-- {
					h.Write(crlf)
				}
				if len(content) > 0 {
					h.Write(content)
					h.Write(crlf)
					any = true
				}
			}
		}
		line = line[:0]
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if !any && !relaxed {
		h.Write(crlf)
	}
	return nil
}

var crlf = []byte("\r\n")

// relaxLine reduces runs of white space to one space and drops it at the end.
func relaxLine(b []byte) []byte {
	if bytes.IndexAny(b, " \t") < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	space := false
	for _, c := range b {
		if c == ' ' || c == '\t' {
			space = true
			continue
		}
		if space {
			out = append(out, ' ')
			space = false
		}
		out = append(out, c)
	}
	return out
}
