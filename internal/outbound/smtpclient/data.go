package smtpclient

import (
	"bufio"
	"bytes"
	"io"
)

// writeData sends a message body as the DATA content (RFC 5321 §4.5.2): every line ends in
// CRLF (a bare LF or CR becomes CRLF, so nothing we send can be read as a different end of
// data by the next hop: SMTP smuggling), lines starting with "." get one more, and the body
// ends with CRLF "." CRLF. The caller sets the write deadline per block through w; buf is
// the read buffer.
func writeData(w *bufio.Writer, body io.Reader, buf []byte) error {
	bol := true // at the beginning of a line
	cr := false // the previous read ended with a CR: CRLF written once we see what follows
	for {
		n, err := body.Read(buf)
		p := buf[:n]
		for len(p) > 0 {
			if cr {
				cr = false
				w.WriteString("\r\n")
				bol = true
				if p[0] == '\n' {
					p = p[1:]
					continue
				}
			}
			if bol && p[0] == '.' {
				w.WriteByte('.') // RFC 5321 §4.5.2: transparency
			}
			i := bytes.IndexAny(p, "\r\n")
			if i < 0 {
				w.Write(p)
				bol = false
				break
			}
			w.Write(p[:i])
			switch {
			case p[i] == '\n':
				p = p[i+1:]
			case i+1 == len(p): // a CR at the end of the read
				cr = true
				p = p[i+1:]
				continue
			case p[i+1] == '\n':
				p = p[i+2:]
			default: // a bare CR
				p = p[i+1:]
			}
			w.WriteString("\r\n")
			bol = true
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if cr {
		w.WriteString("\r\n")
		bol = true
	}
	if !bol {
		w.WriteString("\r\n")
	}
	_, err := w.WriteString(".\r\n")
	return err
}

// Scan reads a message and says what its transport needs: eightBit when any byte has the
// high bit set (BODY=8BITMIME, RFC 6152), utf8Headers when such a byte is in the header
// section (SMTPUTF8, RFC 6532 §3.2). The queue records both at submission time.
func Scan(r io.Reader) (eightBit, utf8Headers bool, err error) {
	br := bufio.NewReaderSize(r, 32<<10)
	inHeader, bol := true, true
	for {
		line, err := br.ReadSlice('\n')
		for _, c := range line {
			if c >= 0x80 {
				eightBit = true
				utf8Headers = utf8Headers || inHeader
			}
		}
		if inHeader && bol && (string(line) == "\r\n" || string(line) == "\n") {
			inHeader = false // the empty line that ends the header section
		}
		bol = err == nil // the piece ended with a newline
		switch {
		case err == io.EOF:
			return eightBit, utf8Headers, nil
		case err == bufio.ErrBufferFull:
		case err != nil:
			return eightBit, utf8Headers, err
		}
	}
}
