"""Signs or verifies a message with dkimpy (Debian python3-dkim), the DKIM implementation the
interop tests compare Petrel's with. Used by opendkim_test.go; not part of Petrel.

  dkimpy.py sign SELECTOR DOMAIN KEYFILE rsa|ed25519 < message > signature-field
      KEYFILE: RSA as PKCS #1 PEM, Ed25519 as the base64 of its 32-byte seed (dkimpy's forms)
  dkimpy.py verify RECORDS.json < message
      RECORDS.json: {"sel._domainkey.example.org": "v=DKIM1; ..."}; prints one line per
      signature ("pass" or "fail"); exits 0 only if every signature passes.
"""
import json
import sys

import dkim


def main():
    msg = sys.stdin.buffer.read()
    if sys.argv[1] == "sign":
        selector, domain, keyfile, alg = sys.argv[2:6]
        with open(keyfile, "rb") as f:
            key = f.read().strip()
        algorithm = b"ed25519-sha256" if alg == "ed25519" else b"rsa-sha256"
        sig = dkim.sign(msg, selector.encode(), domain.encode(), key,
                        signature_algorithm=algorithm,
                        canonicalize=(b"relaxed", b"relaxed"),
                        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        sys.stdout.buffer.write(sig)
        return 0
    with open(sys.argv[2]) as f:
        records = json.load(f)

    def dnsfunc(name, timeout=5):
        return records.get(name.decode().rstrip("."), "").encode()

    d = dkim.DKIM(msg)
    n = len([h for h in d.headers if h[0].lower() == b"dkim-signature"])
    ok = n > 0
    for i in range(n):
        good = d.verify(idx=i, dnsfunc=dnsfunc)
        print("pass" if good else "fail")
        ok = ok and good
    return 0 if ok else 1


sys.exit(main())
