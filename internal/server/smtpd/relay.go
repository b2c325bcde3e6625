package smtpd

import (
	"strings"

	"github.com/emersion/go-smtp"

	"petrel/internal/lib/address"
	"petrel/internal/store"
)

// Relaying: on submission with Config.Relay, a recipient at a domain that is not ours is
// accepted and queued for outbound delivery in the same commit as the local recipients
// (deliver.Envelope.Remote), with its RFC 3461 parameters. Only an authenticated session
// gets that far (policy.requireAuth), so the MX port and an unauthenticated client can never
// relay.

// relayPolicy is the submission policy of a listener that relays.
func relayPolicy(cfg Config) policy {
	return policy{
		offerAuth:   true,
		requireAuth: true,
		checkSender: cfg.SenderPolicy == SenderOwn,
		nullSender:  cfg.SenderPolicy == SenderAny,
		relay:       true,
	}
}

// dsnParams are the DSN parameters of MAIL (RFC 3461 §4.3, §4.4).
type dsnParams struct {
	ret   string // "FULL", "HDRS" or ""
	envID string // decoded by go-smtp
}

func mailDSN(opts *smtp.MailOptions) dsnParams {
	if opts == nil {
		return dsnParams{}
	}
	return dsnParams{ret: string(opts.Return), envID: opts.EnvelopeID}
}

// addRemote accepts a recipient at another domain into the transaction.
func (s *session) addRemote(tx *transaction, a address.Address, opts *smtp.RcptOptions) *smtp.SMTPError {
	if !s.srv.pol.requireAuth {
		return reply(550, 5, 7, 1, "relaying denied") // never reached: relay implies AUTH
	}
	r := store.OutboundRecipient{Address: a.String(), Domain: strings.ToLower(a.Domain)}
	if opts != nil {
		var notify []string
		for _, n := range opts.Notify {
			notify = append(notify, string(n))
		}
		r.Notify = strings.Join(notify, ",")
		r.ORcpt, r.ORcptType = opts.OriginalRecipient, strings.ToLower(string(opts.OriginalRecipientType))
	}
	s.mu.Lock()
	tx.rcpts = append(tx.rcpts, a.String())
	tx.remote = append(tx.remote, r)
	s.mu.Unlock()
	return nil
}
