package smtpd

import (
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/emersion/go-smtp"

	"petrel/internal/lib/connid"
	"petrel/internal/store"
)

// SubmitError is a refusal of Submit: the SMTP reply a client of the submission port
// would have had, so a caller (webmail) can show the same reason.
type SubmitError struct {
	Code         int
	EnhancedCode [3]int
	Message      string
	Recipient    string // the refused recipient, for a refusal at RCPT
}

func (e *SubmitError) Error() string {
	s := fmt.Sprintf("%d %d.%d.%d %s", e.Code, e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2], e.Message)
	if e.Recipient != "" {
		s = "<" + e.Recipient + ">: " + s
	}
	return s
}

// Temporary reports whether the refusal is temporary (4xx): the caller may try again later.
func (e *SubmitError) Temporary() bool { return e.Code/100 == 4 }

// Submit sends one message as acct, exactly as an authenticated client of this submission
// listener would with MAIL, RCPT and DATA: the same sender policy, sending limits,
// recipient resolution, quota checks, trace headers, relay (queue and DKIM signing in
// deliver) and logging, because it drives the same session methods. remote is the
// client's address for the Received header and the log; helo names the front end
// ("webmail"), overTLS whether the front end was reached over TLS. body must use CRLF line endings; every recipient must be accepted, or
// nothing is sent.
//
// It is how the webmail sends, so that a message written in a browser meets every rule a
// message from a mail client meets, with no second path to keep in step.
func (s *Server) Submit(acct store.Account, remote netip.Addr, helo string, overTLS bool, from string, rcpts []string, body io.Reader) (id string, err error) {
	if s.cfg.Role != RoleSubmission {
		return "", errors.New("smtpd: Submit on a listener that is not for submission")
	}
	if len(rcpts) == 0 {
		return "", &SubmitError{Code: 554, EnhancedCode: [3]int{5, 5, 1}, Message: "no valid recipients"}
	}
	if len(rcpts) > s.cfg.MaxRecipients {
		return "", &SubmitError{Code: 452, EnhancedCode: [3]int{4, 5, 3}, Message: "too many recipients"}
	}
	// No connection of ours: the session gets an id of its own for its log lines.
	ses := &session{srv: s, log: s.log.With("conn", connid.New()), remote: remote, helo: helo, tls: overTLS, tlsInfo: "HTTPS", account: &acct}
	defer ses.endTx("aborted")
	if err := ses.Mail(from, nil); err != nil {
		return "", submitError(err, "")
	}
	for _, r := range rcpts {
		if err := ses.Rcpt(r, nil); err != nil {
			return "", submitError(err, r)
		}
	}
	lr := &io.LimitedReader{R: body, N: s.cfg.MaxMessageBytes + 1}
	err = ses.Data(lr)
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code == 250 {
		ses.mu.Lock()
		id = ses.tx.id
		ses.mu.Unlock()
		return id, nil
	}
	return "", submitError(err, "")
}

func submitError(err error, rcpt string) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return &SubmitError{Code: se.Code, EnhancedCode: se.EnhancedCode, Message: se.Message, Recipient: rcpt}
	}
	return err
}
