package deliver

import (
	"context"
	"io"
	"strings"

	"petrel/internal/mail/arc"
)

// ARC on forwarding (RFC 8617): a copy of mail from outside that we send on, an alias's
// forward or a Sieve redirect, leaves from an SRS address of ours, so the next receiver's
// SPF check is of us, not of the author's domain, and a changed header may break the
// author's DKIM signature. An ARC set records what our inbound checks found (the
// Authentication-Results of the MX session, Envelope.Verified) and the chain the message
// arrived with, signed with the forwarding domain's key, so a receiver that trusts us can
// still see that the original passed. Submitted mail and our own notices get no set: they
// are signed with DKIM as they leave, and nobody verified them on the way in.

// Verified is the result of inbound verification that an ARC set repeats.
type Verified struct {
	Results string     // the Authentication-Results results, without the authserv-id
	Chain   arc.Result // the validation of the ARC chain the message arrived with
}

// Sealer makes the ARC set of a forwarded message; *msgauth.Sealer implements it.
type Sealer interface {
	Seal(ctx context.Context, domain string, r io.Reader, results string, chain arc.Result) (string, error)
}

// SetSealer lets Deliver add an ARC set, signed by s, to the copies it forwards of verified
// mail; nil adds none.
func (d *Deliverer) SetSealer(s Sealer) { d.seal = s }

// sealed returns msg (size bytes) with the ARC set of domain prepended, and the new size;
// msg itself when there is nothing to seal. A failure to seal is logged and the copy goes
// unsealed: a forward without ARC is what every forwarder sent before ARC, while refusing
// it would bounce mail the sender cannot fix.
func (d *Deliverer) sealed(ctx context.Context, env Envelope, domain string, msg func() io.Reader, size int64) (io.Reader, int64) {
	if d.seal == nil || env.Verified == nil || domain == "" {
		return msg(), size
	}
	set, err := d.seal.Seal(ctx, strings.ToLower(domain), msg(), env.Verified.Results, env.Verified.Chain)
	if err != nil {
		d.log.Warn("ARC sealing failed; forwarding without a set", "domain", domain, "err", err)
		return msg(), size
	}
	return io.MultiReader(strings.NewReader(set), msg()), size + int64(len(set))
}
