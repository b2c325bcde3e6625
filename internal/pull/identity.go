package pull

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"petrel/internal/mail/deliver"
)

// A message's identity by content, for what the outside server does not name stably.
//
// The fingerprint of a message is the SHA-256 of its header block (RFC 5322 §2.1: the lines
// before the first empty line), each line without its line ending, so a header read by TOP
// and one cut from a RETR agree however the server ends its lines. The header block holds
// the Message-ID, the Date and the Received trace that the servers on the way added, so two
// deliveries of one message, even of the same Message-ID, differ in it; two messages with
// equal header blocks are copies of one delivery. It is recorded with every pulled message
// (store.PulledMessage.Fingerprint) and serves where the server's names fail:
//   - POP3 without UIDL (RFC 1939 §7 makes UIDL optional): the unique-id is derived,
//     "h:" + fingerprint + "#" + n, n counting equal header blocks in message order, so that
//     copies of one message are each pulled once rather than all but the first dropped.
//   - an IMAP folder whose UIDVALIDITY changed, or a POP3 server whose UIDLs changed: a
//     message under a new unique-id whose fingerprint is that of a message pulled under an
//     old one is that message again, and is not delivered twice (each pulled message
//     recognizes one message at most; resync.go).

// headerDigest returns the fingerprint of the message read from r.
func headerDigest(r io.Reader) (string, error) {
	h := sha256.New()
	br := bufio.NewReaderSize(r, 16<<10)
	start := true // at the start of a line
	for {
		line, more, err := br.ReadLine()
		if errors.Is(err, io.EOF) {
			// A message without a body: all of it is header. A last line that filled the
			// buffer exactly came as a prefix with nothing after it: it ends here, as one
			// followed by a line ending does.
			if !start {
				h.Write([]byte("\r\n"))
			}
			break
		}
		if err != nil {
			return "", err
		}
		if start && !more && len(line) == 0 {
			break
		}
		h.Write(line)
		if start = !more; start {
			h.Write([]byte("\r\n"))
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// storedDigest is the fingerprint of a pulled message computed from the copy the delivery
// stored, read from r: the same as headerDigest of the message as the outside server sent
// it. The delivery added one thing to its header: the junk classifier's verdict
// (deliver/junk.go, junk.Verdict.Header), an optional "X-Spam-Flag: YES" line, an
// "X-Spam-Status: ... engine=petrel-bayes" line and an "X-Spam-Score:" line, right after
// a first Return-Path line or at the top. Only that block, at that place, is removed: an
// X-Spam field of the outside server's own filter is part of the message and stays.
func storedDigest(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(r, 16<<10)
	var head []string // the first lines, as many as the verdict can take
	for len(head) < 5 {
		line, err := br.ReadString('\n')
		if line != "" {
			head = append(head, line)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return "", err
			}
			break
		}
		if strings.TrimRight(line, "\r\n") == "" {
			break // the end of the header block
		}
	}
	at := 0
	if len(head) > 0 && strings.HasPrefix(head[0], "Return-Path:") {
		at = 1
	}
	end := at
	if end < len(head) && strings.TrimRight(head[end], "\r\n") == "X-Spam-Flag: YES" {
		end++
	}
	if end+1 < len(head) && strings.HasPrefix(head[end], "X-Spam-Status: ") &&
		strings.HasSuffix(strings.TrimRight(head[end], "\r\n"), " engine=petrel-bayes") &&
		strings.HasPrefix(head[end+1], "X-Spam-Score: ") {
		head = slices.Delete(head, at, end+2)
	}
	return headerDigest(io.MultiReader(strings.NewReader(strings.Join(head, "")), br))
}

// bodyDigest is headerDigest of a body.
func bodyDigest(b deliver.Body) (string, error) {
	return headerDigest(io.NewSectionReader(b, 0, b.Size()))
}

// derivedUIDs names the messages of a POP3 mailbox without UIDL by their fingerprints, in
// message order.
type derivedUIDs map[string]int

// next returns the unique-id of the next message in order with fingerprint fp.
func (d derivedUIDs) next(fp string) string {
	d[fp]++
	return fmt.Sprintf("h:%s#%d", fp, d[fp])
}
