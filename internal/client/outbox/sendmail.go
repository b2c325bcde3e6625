package outbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
)

// Args is a sendmail-compatible command line.
type Args struct {
	FromHeaders bool     // -t: recipients from To, Cc and Bcc; Bcc is removed
	Sender      string   // -f ADDR (or -fADDR, -r ADDR); "-f <>" is the null sender
	SenderSet   bool     // -f or -r was given
	Recipients  []string // the arguments
}

// ParseArgs parses the sendmail options that matter for submission: -t, -f/-r, and accepts
// and ignores those that do not (-i, -oi, -oem, -odb, -v ...), as msmtp does. "--" ends
// the options. Unknown options are an error, not silently dropped.
func ParseArgs(args []string) (Args, error) {
	var a Args
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			a.Recipients = append(a.Recipients, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			a.Recipients = append(a.Recipients, arg)
			continue
		}
		switch {
		case arg == "-t":
			a.FromHeaders = true
		case arg == "-f" || arg == "-r":
			if i+1 >= len(args) {
				return a, fmt.Errorf("%s needs an address", arg)
			}
			i++
			a.Sender, a.SenderSet = args[i], true
		case strings.HasPrefix(arg, "-f") || strings.HasPrefix(arg, "-r"):
			a.Sender, a.SenderSet = arg[2:], true
		case arg == "-F" || arg == "-N" || arg == "-O" || arg == "-B" || arg == "-L":
			i++ // options with an argument we ignore (full name, DSN notify, ...)
		case arg == "-i" || arg == "-oi" || arg == "-v" || strings.HasPrefix(arg, "-o") ||
			strings.HasPrefix(arg, "-F") || strings.HasPrefix(arg, "-N") || strings.HasPrefix(arg, "-B"):
			// -i/-oi: a line with a single dot does not end the message. It never does here:
			// the message ends at end of input, and SMTP dot-stuffing is done on the wire.
		default:
			return a, fmt.Errorf("unsupported option %s", arg)
		}
	}
	// "<>" on the command line is the null sender.
	if a.Sender == "<>" {
		a.Sender = ""
	} else {
		a.Sender = strings.TrimSuffix(strings.TrimPrefix(a.Sender, "<"), ">")
	}
	return a, nil
}

// maxHeader bounds the header section read into memory.
const maxHeader = 1 << 20

// Prepare reads the message from r and returns its envelope and a reader of the bytes to
// send. With -t the recipients of To, Cc and Bcc join those of the command line and the Bcc
// fields are removed (RFC 5322 §3.6.3: Bcc recipients must not be disclosed). The sender
// is -f, else defaultFrom, else the address of the From field. Line endings are passed
// through: the SMTP client turns them into CRLF on the wire.
func Prepare(a Args, defaultFrom string, r io.Reader) (Envelope, io.Reader, error) {
	br := bufio.NewReader(r)
	header, err := readHeader(br)
	if err != nil {
		return Envelope{}, nil, err
	}
	env := Envelope{From: a.Sender, To: append([]string(nil), a.Recipients...)}
	fields := parseFields(header)
	if a.FromHeaders {
		for _, f := range fields {
			switch strings.ToLower(f.name) {
			case "to", "cc", "bcc":
				if strings.TrimSpace(f.value) == "" {
					continue
				}
				list, err := mail.ParseAddressList(f.value)
				if err != nil {
					return Envelope{}, nil, fmt.Errorf("%s field: %w", f.name, err)
				}
				for _, ad := range list {
					env.To = append(env.To, ad.Address)
				}
			}
		}
		var kept bytes.Buffer
		for _, f := range fields {
			if !strings.EqualFold(f.name, "bcc") {
				kept.Write(f.raw)
			}
		}
		header = kept.Bytes()
	}
	if !a.SenderSet {
		env.From = defaultFrom
		if env.From == "" {
			for _, f := range fields {
				if strings.EqualFold(f.name, "from") {
					if ad, err := mail.ParseAddress(f.value); err == nil {
						env.From = ad.Address
					}
				}
			}
		}
		if env.From == "" {
			return Envelope{}, nil, errors.New("no sender: use -f, set from in the account, or write a From field")
		}
	}
	env.To = dedupe(env.To)
	if len(env.To) == 0 {
		return Envelope{}, nil, errors.New("no recipients (give them as arguments, or use -t)")
	}
	return env, io.MultiReader(bytes.NewReader(header), br), nil
}

func dedupe(l []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range l {
		k := strings.ToLower(s)
		if s == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, s)
	}
	return out
}

// readHeader reads up to and including the empty line that ends the header section (or
// to the end of input if there is no body).
func readHeader(br *bufio.Reader) ([]byte, error) {
	var h []byte
	for {
		line, err := br.ReadSlice('\n')
		h = append(h, line...)
		if len(h) > maxHeader {
			return nil, errors.New("header section too large")
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return h, nil
			}
			return nil, err
		}
		if string(line) == "\n" || string(line) == "\r\n" {
			return h, nil
		}
	}
}

type field struct {
	name, value string
	raw         []byte // the field's lines as they were, folding included
}

// parseFields splits a header section into fields (RFC 5322 §2.2, with folding §2.2.3).
// The final empty line becomes a nameless field so that joining raw reproduces the input.
func parseFields(h []byte) []field {
	var out []field
	for len(h) > 0 {
		end := bytes.IndexByte(h, '\n') + 1
		if end == 0 {
			end = len(h)
		}
		for end < len(h) && (h[end] == ' ' || h[end] == '\t') {
			next := bytes.IndexByte(h[end:], '\n')
			if next < 0 {
				end = len(h)
			} else {
				end += next + 1
			}
		}
		raw := h[:end]
		h = h[end:]
		name, value, ok := bytes.Cut(raw, []byte(":"))
		if !ok || bytes.ContainsAny(name, " \t\r\n") {
			out = append(out, field{raw: raw})
			continue
		}
		v := strings.NewReplacer("\r\n", "", "\n", "").Replace(string(value))
		out = append(out, field{name: string(name), value: strings.TrimSpace(v), raw: raw})
	}
	return out
}
