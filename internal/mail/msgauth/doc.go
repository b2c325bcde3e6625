// Package msgauth signs outgoing mail with DKIM and checks inbound mail with SPF, DKIM and
// DMARC, producing one verdict and one Authentication-Results field. It is protocol-neutral:
// the SMTP session, the queue and the CLI call it with plain values.
//
// # Who calls what
//
//   - The queue (or submission) signs: Signer.Sign reads the message once and returns the
//     DKIM-Signature fields to prepend. Keys come from a KeySource (StaticKeys in memory,
//     KeyDir on disk, or one the store implements); a domain with an RSA and an Ed25519 key
//     gets both signatures (RFC 8463 §6).
//   - The CLI makes keys and prints records: GenerateKey, Key.MarshalPEM / ParseKey,
//     KeyDir.Add (files of mode 0600), Key.Record, SplitTXT and ZoneTXT, DefaultSelector;
//     Records lists every TXT record a domain publishes (SPF, DKIM, DMARC).
//   - The inbound SMTP session verifies after DATA: Verifier.Verify(envelope, spooled
//     message) returns a Verdict: SPF, each DKIM signature, DMARC, the Disposition (reject
//     at DATA with 550 5.7.1, quarantine into Junk, or accept) and the AuthResults field to
//     prepend. Before storing, StripAuthResults (or RemoveAuthResults on a header section)
//     drops fields that claim our authserv-id (RFC 8601 §5).
//
// # Libraries, and what is ours
//
// The cryptography and the record grammars are well-kept libraries: go-msgauth's dkim
// (RFC 6376 signing and verification, relaxed/simple canonicalization, rsa-sha256 and
// ed25519-sha256, RFC 8301's refusal of rsa-sha1 and short keys), go-msgauth's dmarc
// (record parsing) and authres (value quoting), and blitiri.com.ar/go/spf (RFC 7208, with
// its DNS look-up limits and test suite). This package adds what they leave to the caller:
//
//   - DMARC evaluation (RFC 7489 §6.6): policy discovery at the From domain then at its
//     organizational domain, strict and relaxed alignment of the SPF and DKIM identifiers,
//     p/sp, pct sampling with the §6.6.4 downgrade, and temperror when an aligned check
//     could not be completed. The organizational domain comes from the public suffix list
//     compiled into golang.org/x/net/publicsuffix: nothing to download at run time.
//   - The signed header list: the fields RFC 6376 §5.4.1 recommends, each as often as it
//     occurs, and the ones an attacker could add to change what the reader sees (From,
//     Subject, Date, To, Cc, Reply-To, Content-Type, ...) once more ("oversigning", §8.15).
//   - Bounds: the header section held in memory (DefaultMaxHeaderBytes), the signatures
//     verified per message and hence key look-ups (DefaultMaxSignatures), a deadline on the
//     DNS work of one message (DefaultTimeout), the size of one TXT answer.
//
// # Streaming
//
// Neither signing nor verification holds the message: both read the header section into
// memory (bounded) and stream the body through the canonicalizing hash, so a 50 MB
// message from the spool costs 50 MB of hashing and a header's worth of memory. A message
// without DKIM-Signature fields is not read past its header at all.
//
// # DNS
//
// Resolver is the four look-ups SPF needs (TXT, MX, addresses, PTR), in the shape of
// *net.Resolver, so the server can pass its own resolver (the one of internal/outbound/mx,
// or one pointed at a test DNS server). Its errors follow *net.DNSError: IsNotFound for a
// name without records, IsTemporary or IsTimeout for failures that may pass. Anything else
// is treated as temporary, so a broken resolver yields temperror (and a retry at the
// sender), never pass and never a permanent failure.
//
// # Not here
//
// ARC (RFC 8617) chains are validated by internal/mail/arc while DKIM hashes the body
// (Verdict.ARC, "arc=" in Authentication-Results); the result is reported and decides
// nothing: DMARC does not consult it (RFC 8617 §7.2 leaves that to local policy). Sealing
// forwarded mail is not done yet (arc.Signer exists; the forwarding path does not call
// it). DMARC reports (rua/ruf) are not sent. The DKIM signature time (t=) and expiry
// check (x=) use go-msgauth's own clock, which cannot be injected; Petrel signs without x=.
package msgauth
