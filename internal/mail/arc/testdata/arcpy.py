# Drives dkimpy's ARC (Debian's python3-dkim) for the interop tests of internal/mail/arc.
#   arcpy.py sign KEY.pem DOMAIN SELECTOR AUTHSERV-ID < message   prints the message with a new ARC set
#   arcpy.py verify RECORDS.json < message                        prints cv and the reason
# RECORDS.json maps a DNS name (selector._domainkey.domain) to its TXT record: no DNS is asked.
import json
import sys

import dkim

mode = sys.argv[1]
msg = sys.stdin.buffer.read()
if mode == "sign":
    key = open(sys.argv[2], "rb").read()
    algo = b"ed25519-sha256" if b"BEGIN" not in key else b"rsa-sha256"
    headers = dkim.arc_sign(msg, sys.argv[4].encode(), sys.argv[3].encode(), key, sys.argv[5].encode(),
                            signature_algorithm=algo,
                            include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    if not headers:
        sys.exit("dkimpy added no ARC set")
    sys.stdout.buffer.write(b"".join(headers) + msg)
elif mode == "verify":
    records = json.load(open(sys.argv[2]))

    def dnsfunc(name, timeout=5):
        name = name.decode().rstrip(".")
        return records.get(name, "").encode() or None

    cv, results, reason = dkim.arc_verify(msg, dnsfunc=dnsfunc)
    print((cv or b"none").decode(), reason)
