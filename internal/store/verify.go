package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// VerifyReport is what VerifyExport found.
type VerifyReport struct {
	Problems                              []string
	Accounts, Mailboxes, Messages, Bodies int64
	Bytes                                 int64
}

// VerifyExport checks a store through its export (one snapshot), whatever its backend:
// every body has the size and SHA-256 it was stored with; every message and queue entry
// has its body, and each message its body's size; UIDs are below their mailbox's UIDNEXT
// (tombstones included); MODSEQs never exceed their mailbox's, nor a mailbox's its
// account's; the counts kept in mailboxes and accounts agree with the messages. The
// database's own integrity (pages, indexes) is the database's to check.
func VerifyExport(ctx context.Context, e Exporter) (VerifyReport, error) {
	type account struct{ modseq, messages, size int64 }
	type mailbox struct {
		account, uidnext, modseq int64
		kept, counted            counts4
	}
	var r VerifyReport
	accounts := map[int64]*account{}
	mailboxes := map[int64]*mailbox{}
	bodies := map[int64]int64{} // blob ID → size
	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }
	i64 := func(v any) int64 { n, _ := v.(int64); return n }
	err := e.Export(ctx, func(table string, row []any) error {
		switch table {
		case "accounts": // id address ... modseq(8) messages(9) size(10)
			r.Accounts++
			accounts[i64(row[0])] = &account{modseq: i64(row[8]), messages: i64(row[9]), size: i64(row[10])}
		case "mailboxes": // id account_id name uidvalidity uidnext modseq messages unseen deleted size
			r.Mailboxes++
			id, acct := i64(row[0]), i64(row[1])
			mb := &mailbox{account: acct, uidnext: i64(row[4]), modseq: i64(row[5]),
				kept: counts4{i64(row[6]), i64(row[7]), i64(row[8]), i64(row[9])}}
			mailboxes[id] = mb
			if a := accounts[acct]; a == nil {
				problem("mailbox %d: its account %d is missing", id, acct)
			} else if mb.modseq > a.modseq {
				problem("mailbox %d: MODSEQ %d above its account's %d", id, mb.modseq, a.modseq)
			}
		case "blobs": // id digest size ... data
			r.Bodies++
			id, size := i64(row[0]), i64(row[2])
			data, _ := row[len(row)-1].([]byte)
			digest, _ := row[1].([]byte)
			bodies[id] = size
			r.Bytes += size
			if int64(len(data)) != size {
				problem("body %d: %d bytes stored, its size is %d", id, len(data), size)
			} else if sum := sha256.Sum256(data); digest != nil && !bytes.Equal(sum[:], digest) {
				problem("body %d: its bytes differ from their SHA-256 recorded at delivery", id)
			}
		case "messages": // id mailbox_id uid blob_id size internal_date flags modseq
			r.Messages++
			id, box, uid, blob, size, modseq := i64(row[0]), i64(row[1]), i64(row[2]), i64(row[3]), i64(row[4]), i64(row[7])
			flags, _ := row[6].(string)
			mb := mailboxes[box]
			if mb == nil {
				problem("message %d: its mailbox %d is missing", id, box)
				return nil
			}
			if bsize, ok := bodies[blob]; !ok {
				problem("message %d (mailbox %d, UID %d): its body %d is missing", id, box, uid, blob)
			} else if bsize != size {
				problem("message %d (mailbox %d, UID %d): size %d, its body has %d", id, box, uid, size, bsize)
			}
			if uid >= mb.uidnext {
				problem("message %d: UID %d is not below its mailbox's UIDNEXT %d", id, uid, mb.uidnext)
			}
			if modseq > mb.modseq {
				problem("message %d: MODSEQ %d above its mailbox's %d", id, modseq, mb.modseq)
			}
			f := strings.Fields(flags)
			c := counts4{1, 1, 0, size}
			if slices.Contains(f, FlagSeen) {
				c.unseen = 0
			}
			if slices.Contains(f, FlagDeleted) {
				c.deleted = 1
			}
			mb.counted.add(c)
		case "expunged": // mailbox_id uid modseq
			box, uid, modseq := i64(row[0]), i64(row[1]), i64(row[2])
			if mb := mailboxes[box]; mb != nil && (uid >= mb.uidnext || modseq > mb.modseq) {
				problem("tombstone of UID %d in mailbox %d: UID or MODSEQ %d beyond the mailbox's UIDNEXT %d / MODSEQ %d", uid, box, modseq, mb.uidnext, mb.modseq)
			}
		case "queue": // id blob_id
			if _, ok := bodies[i64(row[1])]; !ok {
				problem("queue entry %d: its body %d is missing", i64(row[0]), i64(row[1]))
			}
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	usage := map[int64]*account{}
	for _, id := range slices.Sorted(maps.Keys(mailboxes)) {
		mb := mailboxes[id]
		if mb.kept != mb.counted {
			problem("mailbox %d: kept counts (messages, unseen, deleted, size) %v, its messages give %v", id, mb.kept, mb.counted)
		}
		u := usage[mb.account]
		if u == nil {
			u = &account{}
			usage[mb.account] = u
		}
		u.messages += mb.counted.messages
		u.size += mb.counted.size
	}
	for _, id := range slices.Sorted(maps.Keys(accounts)) {
		a, u := accounts[id], usage[id]
		if u == nil {
			u = &account{}
		}
		if a.messages != u.messages || a.size != u.size {
			problem("account %d: usage %d messages and %d bytes kept, its mailboxes hold %d and %d", id, a.messages, a.size, u.messages, u.size)
		}
	}
	return r, nil
}

type counts4 struct{ messages, unseen, deleted, size int64 }

func (c *counts4) add(d counts4) {
	c.messages += d.messages
	c.unseen += d.unseen
	c.deleted += d.deleted
	c.size += d.size
}
