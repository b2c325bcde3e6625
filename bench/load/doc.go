// Package load drives a mail server with SMTP, POP3 and IMAP traffic and
// measures it.
//
// It is the library behind the petrel-load command. It speaks only the wire
// protocols, through go-smtp's client and small POP3 and IMAP clients of its
// own (pop3client.go, imapclient.go), and never imports Petrel's internal
// packages: the same numbers can then be taken from Petrel and from any other
// server (Postfix+Dovecot, ...), which is the point of a comparison.
//
// Scenarios (one Run function each, all returning a *Result):
//
//   - RunSMTP: N messages of S bytes over C connections, K per connection;
//     optionally followed by a POP3 poll that measures end-to-end delivery
//     (SMTPConfig.Wait).
//   - RunPOP3: C clients log in, STAT, LIST, RETR every message (checking
//     its size against LIST and its CRLF.CRLF end), optionally DELE, QUIT.
//   - RunWait: poll STAT over POP3 until enough messages are visible.
//   - RunIdle: hold N POP3 connections, or IMAP sessions in IDLE
//     (IdleConfig.IMAP), open and measure server memory per connection from
//     /proc/PID/smaps_rollup.
//   - RunIMAPFetch: C clients log in, SELECT and fetch every message of a
//     mailbox (UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[])), each checked.
//   - RunIMAPMixed: C sessions cycle through SELECT, header FETCH, STORE,
//     SEARCH, APPEND and EXPUNGE; one op is a command answered OK.
//
// Rules the code keeps:
//   - Every read and write has a deadline (Target.Timeout, applied by
//     deadlineConn before each call, so a library that clears deadlines
//     cannot leave us hanging), and every connection is closed when the run's
//     context ends, so a run always stops by itself.
//   - The tool connects only to the address it is given.
//   - Failures do not stop a run: they are counted in Result.Errors, with
//     the first few kept as text. Config mistakes are the only returned errors.
//   - Latency samples are kept per worker and merged at the end, so workers
//     do not contend on a lock for every operation.
package load
