// Package imapd is Petrel's IMAP server (IMAP4rev1, RFC 3501, read with RFC 9051's grammar,
// and the extensions docs/rfc-status.md lists): a protocol layer of our own
// (docs/architecture.md, "IMAP: go-imap v2 or our own").
//
// Where things are:
//   - The wire: reader.go frames commands (lines and literals, every limit checked before
//     anything is read); tokens.go, seqset.go, search.go, fetchatt.go and command.go parse
//     RFC 9051's grammar into a Command; mutf7.go converts mailbox names for IMAP4rev1
//     clients; writer.go writes responses without fmt.
//   - The server and the session: server.go (listeners, Shutdown, the invariants),
//     session.go (the state table, login, STARTTLS), idle.go (waiting cheaply, IDLE).
//   - The selected mailbox: selected.go (message numbers, and what other sessions changed,
//     read from the store by MODSEQ), fetch.go (FETCH from the cached parse), update.go
//     (STORE, COPY, MOVE), searcheval.go (SEARCH, with an interim body scan), mailboxes.go
//     (CREATE, DELETE, RENAME, STATUS, APPEND), listext.go (LIST, LSUB, LIST-EXTENDED,
//     LIST-STATUS), binary.go (BINARY).
//   - Extensions a client turns on: enable.go (ENABLE and what it enabled), syncargs.go (the
//     CONDSTORE/QRESYNC syntax), condstore.go, qresync.go, esearch.go (ESEARCH, SEARCHRES,
//     MODSEQ in results), imap4rev2.go (where rev2 answers differently).
package imapd
