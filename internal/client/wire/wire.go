// Package wire holds what the client tools' protocol clients (POP3, the IMAP source of fetch,
// SMTP submission of the outbox) share when they talk to a server: the error for an answer
// that breaks the protocol. (Their SCRAM-SHA-256 client lives in lib/scram, beside the key
// derivation, because the outbound relay's smart-host login uses it too.)
package wire

import "errors"

// ErrProtocol marks a server answer that is not the protocol being spoken (a malformed status
// line, a missing UIDVALIDITY, data after a STARTTLS reply). Callers wrap it with the detail;
// errors.Is tells it apart from network errors and refusals.
var ErrProtocol = errors.New("protocol error")
