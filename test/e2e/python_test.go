package e2e

// Python's smtplib and poplib as real clients: widely used, strict about replies, and their
// retrieval gives back exact bytes.

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pySMTP: host port mode(plain|starttls|ssl) cafile user password from rcpts(comma) file
const pySMTP = `
import smtplib, ssl, sys
host, port, mode, cafile, user, password, mail_from, rcpts, path = sys.argv[1:10]
ctx = ssl.create_default_context(cafile=cafile)
msg = open(path, 'rb').read()
if mode == 'ssl':
    s = smtplib.SMTP_SSL(host, int(port), local_hostname='client.example', context=ctx, timeout=20)
else:
    s = smtplib.SMTP(host, int(port), local_hostname='client.example', timeout=20)
s.ehlo()
if mode == 'starttls':
    s.starttls(context=ctx)
    s.ehlo()
if user:
    s.login(user, password)
refused = s.sendmail(mail_from, rcpts.split(','), msg)
if refused:
    sys.exit('refused: %r' % refused)
s.quit()
`

// pyPOP3: host port mode(ssl|stls) cafile user password action(keep|dele)
// Prints JSON {"count", "size", "uidl", "messages" (base64)}.
const pyPOP3 = `
import base64, json, poplib, ssl, sys
host, port, mode, cafile, user, password, action = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=cafile)
if mode == 'ssl':
    p = poplib.POP3_SSL(host, int(port), context=ctx, timeout=20)
else:
    p = poplib.POP3(host, int(port), timeout=20)
    if mode == 'stls':
        p.stls(context=ctx)
p.user(user)
p.pass_(password)
count, size = p.stat()
uidl = [l.decode().split()[1] for l in p.uidl()[1]]
msgs = []
for i in range(1, count + 1):
    resp, lines, octets = p.retr(i)
    msgs.append(base64.b64encode(b'\r\n'.join(lines) + b'\r\n').decode())
    if action == 'dele':
        p.dele(i)
p.quit()
print(json.dumps({'count': count, 'size': size, 'uidl': uidl, 'messages': msgs}))
`

// pySend submits msg with smtplib. mode is plain, starttls or ssl; user "" skips AUTH.
func pySend(t *testing.T, addr, mode, user, pass, from string, to []string, msg []byte) {
	t.Helper()
	host, port := splitAddr(t, addr)
	path := filepath.Join(t.TempDir(), "msg.eml")
	if err := os.WriteFile(path, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, nil, nil, "python3", "-c", pySMTP, host, port, mode, ca.File, user, pass, from, strings.Join(to, ","), path)
}

// pyMaildrop is what pyFetch saw.
type pyMaildrop struct {
	Count    int      `json:"count"`
	Size     int      `json:"size"`
	UIDL     []string `json:"uidl"`
	Messages [][]byte `json:"-"`
}

// pyFetch retrieves every message with poplib (mode ssl or stls), deleting them if dele.
func pyFetch(t *testing.T, addr, mode, cafile, user, pass string, dele bool) pyMaildrop {
	t.Helper()
	host, port := splitAddr(t, addr)
	action := "keep"
	if dele {
		action = "dele"
	}
	out := run(t, nil, nil, "python3", "-c", pyPOP3, host, port, mode, cafile, user, pass, action)
	var raw struct {
		pyMaildrop
		B64 []string `json:"messages"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("poplib output: %v\n%s", err, out)
	}
	md := raw.pyMaildrop
	total := 0
	for _, s := range raw.B64 {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		md.Messages = append(md.Messages, b)
		total += len(b)
	}
	// RFC 1939 §5 STAT: the size is the exact octet count of the maildrop.
	if total != md.Size {
		t.Errorf("STAT size %d, but the retrieved messages have %d octets", md.Size, total)
	}
	return md
}

func splitAddr(t *testing.T, addr string) (host, port string) {
	t.Helper()
	host, port, ok := strings.Cut(addr, ":")
	if !ok {
		t.Fatalf("bad address %q", addr)
	}
	return host, port
}
