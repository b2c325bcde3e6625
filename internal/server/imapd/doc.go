// Package imapd is Petrel's IMAP server: a protocol layer of our own (docs/architecture.md,
// "IMAP: go-imap v2 or our own").
//
// This first part is the wire: reader.go frames commands (lines and literals, with every
// limit checked before anything is read), tokens.go, seqset.go, search.go, fetchatt.go and
// command.go parse RFC 9051's grammar into a Command, mutf7.go converts mailbox names for
// IMAP4rev1 clients, and writer.go writes responses without fmt.
package imapd
