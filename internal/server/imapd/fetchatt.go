package imapd

// FETCH data items (RFC 9051 §6.4.5 and fetch-att in §9; RFC 3501's RFC822, RFC822.HEADER
// and RFC822.TEXT; RFC 3516 BINARY, BINARY.PEEK and BINARY.SIZE).

import (
	"strconv"
	"strings"
)

// Section is a body section: BODY[Part.Specifier (Fields)].
type Section struct {
	Part      []uint32 // "1.2.3"; empty: the whole message
	Specifier string   // "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT" or "MIME"
	Fields    []string // HEADER.FIELDS (.NOT): header field names as sent
}

// FetchAtt is one FETCH data item.
type FetchAtt struct {
	// Name is upper-case: ENVELOPE FLAGS INTERNALDATE RFC822.SIZE RFC822 RFC822.HEADER
	// RFC822.TEXT BODY BODYSTRUCTURE UID BINARY BINARY.SIZE; BODY with a section is
	// BODY[...], with HasSection set.
	Name       string
	HasSection bool
	Section    Section
	Peek       bool // BODY.PEEK / BINARY.PEEK: \Seen is not set
	Partial    bool // <Offset.Count>
	Offset     uint32
	Count      uint32
}

// fetchMacros expand ALL, FAST and FULL (RFC 9051 §6.4.5).
var fetchMacros = map[string][]string{
	"ALL":  {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"},
	"FAST": {"FLAGS", "INTERNALDATE", "RFC822.SIZE"},
	"FULL": {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"},
}

var fetchSimple = map[string]bool{
	"ENVELOPE": true, "FLAGS": true, "INTERNALDATE": true, "RFC822.SIZE": true, "RFC822": true,
	"RFC822.HEADER": true, "RFC822.TEXT": true, "BODYSTRUCTURE": true, "UID": true,
	"MODSEQ": true, // RFC 7162 §3.1.4
}

// fetchAtts reads ("ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")").
func (r *reader) fetchAtts() ([]FetchAtt, error) {
	if r.peek() == '(' {
		var atts []FetchAtt
		err := r.list(false, func() error {
			a, err := r.fetchAtt()
			atts = append(atts, a)
			return err
		})
		return atts, err
	}
	save := r.pos
	if m, ok := fetchMacros[r.keyword()]; ok {
		atts := make([]FetchAtt, len(m))
		for i, n := range m {
			atts[i].Name = n
		}
		return atts, nil
	}
	r.pos = save
	a, err := r.fetchAtt()
	return []FetchAtt{a}, err
}

func (r *reader) fetchAtt() (FetchAtt, error) {
	name := r.keyword()
	a := FetchAtt{Name: name}
	switch {
	case fetchSimple[name]:
		return a, nil
	case name == "BODY" && r.peek() != '[':
		return a, nil // BODY without section: the non-extensible BODYSTRUCTURE
	case name == "BODY" || name == "BODY.PEEK":
		a.Name, a.Peek, a.HasSection = "BODY", name == "BODY.PEEK", true
		var err error
		if a.Section, err = r.section(); err != nil {
			return a, err
		}
	case name == "BINARY" || name == "BINARY.PEEK" || name == "BINARY.SIZE":
		a.Name, a.Peek, a.HasSection = name, name == "BINARY.PEEK", true
		if a.Peek {
			a.Name = "BINARY"
		}
		var err error
		if a.Section, err = r.sectionBinary(); err != nil {
			return a, err
		}
		if name == "BINARY.SIZE" {
			return a, nil // no partial (RFC 3516 fetch-att)
		}
	default:
		return a, badf("Unknown FETCH item")
	}
	if r.peek() == '<' { // partial = "<" number "." nz-number ">"
		r.pos++
		var err error
		if a.Offset, err = r.number(); err != nil {
			return a, err
		}
		if err := r.expect('.'); err != nil {
			return a, err
		}
		if a.Count, err = r.nzNumber(); err != nil {
			return a, err
		}
		if err := r.expect('>'); err != nil {
			return a, err
		}
		a.Partial = true
	}
	return a, nil
}

// sectionPart reads nz-number *("." nz-number), stopping before a "." that is followed by a
// letter (the section-text that follows a part: "1.2.HEADER").
func (r *reader) sectionPart() ([]uint32, error) {
	var part []uint32
	for {
		n, err := r.nzNumber()
		if err != nil {
			return nil, err
		}
		if len(part) >= r.lim.MaxDepth {
			return nil, badf("Section part too deep")
		}
		part = append(part, n)
		if r.peek() != '.' || r.pos+1 >= len(r.line) || r.line[r.pos+1] < '0' || r.line[r.pos+1] > '9' {
			return part, nil
		}
		r.pos++
	}
}

// section reads "[" [section-spec] "]".
func (r *reader) section() (Section, error) {
	var s Section
	if err := r.expect('['); err != nil {
		return s, err
	}
	if c := r.peek(); '0' <= c && c <= '9' {
		var err error
		if s.Part, err = r.sectionPart(); err != nil {
			return s, err
		}
		if r.peek() == ']' {
			r.pos++
			return s, nil
		}
		if err := r.expect('.'); err != nil {
			return s, err
		}
	} else if r.peek() == ']' {
		r.pos++
		return s, nil
	}
	s.Specifier = r.keyword()
	switch s.Specifier {
	case "HEADER", "TEXT":
	case "MIME":
		if len(s.Part) == 0 {
			return s, badf("MIME needs a part number") // section-text after section-part only
		}
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		if err := r.sp(); err != nil {
			return s, err
		}
		err := r.list(false, func() error {
			f, err := r.astring()
			if err == nil && !validFieldName(f) {
				err = badf("Bad header field name")
			}
			s.Fields = append(s.Fields, f)
			return err
		})
		if err != nil {
			return s, err
		}
	default:
		return s, badf("Bad section")
	}
	return s, r.expect(']')
}

// sectionBinary reads "[" [section-part] "]" (RFC 3516).
func (r *reader) sectionBinary() (Section, error) {
	var s Section
	if err := r.expect('['); err != nil {
		return s, err
	}
	if r.peek() != ']' {
		var err error
		if s.Part, err = r.sectionPart(); err != nil {
			return s, err
		}
	}
	return s, r.expect(']')
}

// validFieldName: a header field name is printable US-ASCII except ":" (RFC 5322 §3.6.8).
// Of those, the few that are atom-specials ("(", DQUOTE, "\", "{", "%", "*", "]") are refused
// too: no real header uses them, and the names are echoed in the FETCH response as atoms.
func validFieldName(f string) bool {
	if f == "" {
		return false
	}
	for i := 0; i < len(f); i++ {
		if c := f[i]; !isAtomChar(c) || c >= 0x80 || c == ':' {
			return false
		}
	}
	return true
}

// String formats the section as it goes between the brackets of a FETCH response
// ("1.2.HEADER.FIELDS (From To)"): the response names the section the client asked for
// (RFC 9051 §7.5.2, BODY[<section>]).
func (s Section) String() string {
	var b strings.Builder
	for i, p := range s.Part {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.FormatUint(uint64(p), 10))
	}
	if s.Specifier != "" {
		if len(s.Part) > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.Specifier)
	}
	if len(s.Fields) > 0 {
		b.WriteString(" (")
		for i, f := range s.Fields {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(f)
		}
		b.WriteByte(')')
	}
	return b.String()
}
