"""Reads a DSN with Python's email package (another MIME implementation than Go's) and
prints what a bounce processor would look at, one "key: value" per line. Used by
python_test.go; not part of Petrel."""
import email
import email.policy
import sys

msg = email.message_from_binary_file(sys.stdin.buffer, policy=email.policy.default)
print("content-type:", msg.get_content_type())
print("report-type:", msg.get_param("report-type"))
for part in msg.iter_parts():
    ctype = part.get_content_type()
    print("part:", ctype)
    if ctype in ("message/delivery-status", "message/global-delivery-status"):
        blocks = part.get_payload()
        print("reporting-mta:", blocks[0]["Reporting-MTA"])
        for block in blocks[1:]:
            print("recipient:", block["Final-Recipient"], "|", block["Action"], "|", block["Status"])
    elif ctype == "message/rfc822":
        inner = part.get_payload()[0]
        print("original-subject:", inner["Subject"])
