package imapd

// FETCH BINARY[section]<partial>, BINARY.PEEK and BINARY.SIZE (RFC 3516, part of IMAP4rev2):
// a leaf part with its content-transfer-encoding undone. The decoded part is built in
// memory, bounded by the part's stored size (at most the APPEND and SMTP size limits).

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"slices"

	"petrel/internal/mail/message"
	"petrel/internal/store"
)

// binaryDecodable reports whether a part's encoding can be undone (RFC 3516 §4.3: otherwise
// NO [UNKNOWN-CTE]).
func binaryDecodable(p *message.Part) bool {
	switch p.Encoding {
	case "", "7bit", "8bit", "binary", "base64", "quoted-printable":
		return true
	}
	return false
}

// binaryCheck refuses a FETCH of BINARY items before any response is written if one of the
// parts asked for has an encoding we cannot undo.
func (s *session) binaryCheck(msgs []store.Message, atts []FetchAtt) error {
	if !slices.ContainsFunc(atts, func(a FetchAtt) bool { return a.Name == "BINARY" || a.Name == "BINARY.SIZE" }) {
		return nil
	}
	for _, m := range msgs {
		fm := &fetchMsg{m: m}
		root, err := s.loadParsed(fm)
		if err != nil {
			return err
		}
		for _, a := range atts {
			if a.Name != "BINARY" && a.Name != "BINARY.SIZE" || len(a.Section.Part) == 0 {
				continue
			}
			if p := findPart(root, a.Section.Part); p != nil && !binaryDecodable(p) {
				return &Error{Kind: NO, Code: "UNKNOWN-CTE", Text: "Cannot decode the part's content-transfer-encoding"}
			}
		}
	}
	return nil
}

// binaryData returns the decoded octets of a section: the whole message or a multipart as
// stored, a leaf part decoded. A part that does not exist is empty (as BODY[] answers it).
func (s *session) binaryData(fm *fetchMsg, sec Section) ([]byte, error) {
	m := fm.m
	if len(sec.Part) == 0 {
		return s.readRange(fm, 0, m.Size)
	}
	root, err := s.loadParsed(fm)
	if err != nil {
		return nil, err
	}
	p := findPart(root, sec.Part)
	if p == nil {
		return nil, nil
	}
	start, length, _ := sectionExtent(root, m.Size, Section{Part: sec.Part})
	raw, err := s.readRange(fm, start, length)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	switch p.Encoding {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, bytes.NewReader(raw)) // skips CR and LF
	case "quoted-printable":
		r = quotedprintable.NewReader(bytes.NewReader(raw))
	default:
		return raw, nil
	}
	// Damaged encoding yields what decoded before the damage: a broken message must not
	// break the FETCH.
	dec, _ := io.ReadAll(r)
	return dec, nil
}

// fetchBinary writes BINARY[part]<partial> or BINARY.SIZE[part].
func (s *session) fetchBinary(fm *fetchMsg, a FetchAtt, item func(string)) error {
	data, err := s.binaryData(fm, a.Section)
	if err != nil {
		return err
	}
	w := s.out()
	if a.Name == "BINARY.SIZE" {
		item("BINARY.SIZE[" + a.Section.String() + "]")
		w.num64(int64(len(data)))
		return nil
	}
	name := "BINARY[" + a.Section.String() + "]"
	if a.Partial {
		name += "<" + utoa(a.Offset) + ">"
		off := min(int(a.Offset), len(data))
		data = data[off:min(len(data), off+int(a.Count))]
	}
	item(name)
	if bytes.IndexByte(data, 0) >= 0 {
		w.byte('~') // literal8: NUL octets are allowed only there (RFC 3516 §4.1)
	}
	w.literalString(string(data))
	return nil
}

// hasNUL reports whether a spooled message holds a NUL octet, which a literal8 APPEND may
// bring and no literal of a FETCH response may carry.
func hasNUL(r io.ReaderAt) bool {
	buf := make([]byte, 32<<10)
	for off := int64(0); ; {
		n, err := r.ReadAt(buf, off)
		if bytes.IndexByte(buf[:n], 0) >= 0 {
			return true
		}
		if err != nil {
			return false
		}
		off += int64(n)
	}
}
