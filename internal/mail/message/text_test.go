package message

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestParseAtText checks that the index text is decoded: encoded words in the header,
// base64, quoted-printable and Latin-1 parts, HTML without its markup and scripts, and
// nothing of non-text parts.
func TestParseAtText(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte("Grüße aus dem Base64-Teil\r\n"))
	msg := "From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.org>\r\n" +
		"To: alice@example.org, Bob <bob@example.net>\r\n" +
		"Cc: carol@example.org\r\n" +
		"Subject: =?ISO-8859-1?Q?R=E9sum=E9?= attached\r\n" +
		"X-Mailer: Petrel-Test\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		b64[:20] + "\r\n" + b64[20:] + "\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"Caf=E9 cr=E8me, a soft=\r\nwrapped line\r\n" +
		"--b1\r\nContent-Type: text/html\r\n\r\n" +
		"<html><head><style>.secretstyle{}</style><script>var secretscript;</script></head>" +
		"<body><p>Hello &amp; welcome</p></body></html>\r\n" +
		"--b1\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"aW1hZ2VieXRlcw==\r\n" +
		"--b1--\r\n"
	pm, err := ParseAt(strings.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	tx := pm.Text
	if tx == nil {
		t.Fatal("no text")
	}
	checks := []struct {
		field, got, want string
	}{
		{"subject", tx.Subject, "Résumé attached"},
		{"from", tx.From, "Jürgen"},
		{"to", tx.To, "bob@example.net"},
		{"cc", tx.Cc, "carol@example.org"},
		{"header", tx.Header, "x-mailer: Petrel-Test"},
		{"body", tx.Body, "Grüße aus dem Base64-Teil"},
		{"body", tx.Body, "Café crème, a softwrapped line"},
		{"body", tx.Body, "Hello & welcome"},
	}
	for _, c := range checks {
		if !strings.Contains(c.got, c.want) {
			t.Errorf("%s %q does not hold %q", c.field, c.got, c.want)
		}
	}
	for _, absent := range []string{"secretstyle", "secretscript", "imagebytes", "R=E9", "Caf=E9", b64[:20]} {
		if strings.Contains(tx.Body, absent) || strings.Contains(tx.Subject, absent) {
			t.Errorf("index text holds %q: %+v", absent, tx)
		}
	}
	if tx.Bcc != "" {
		t.Errorf("Bcc %q, want none", tx.Bcc)
	}
}

// TestParseAtMalformed: broken encodings index what decoded and never fail.
func TestParseAtMalformed(t *testing.T) {
	msg := "Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=!!!not base64\r\n"
	pm, err := ParseAt(strings.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(pm.Text.Body, "hello world") {
		t.Errorf("body %q, want the part that decoded", pm.Text.Body)
	}
	msg = "Subject: \xff\xfe bad\r\nContent-Type: text/plain; charset=no-such-charset\r\n\r\n\xff text\r\n"
	pm, err = ParseAt(strings.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(pm.Text.Body, "text") || !strings.Contains(pm.Text.Subject, "bad") {
		t.Errorf("text %+v", pm.Text)
	}
}
