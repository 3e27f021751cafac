"""Verifies SNS message signatures independently of HQ, as a subscriber would.

Usage: verify_signatures.py MESSAGES_JSON

MESSAGES_JSON holds a JSON array of raw POST bodies. For each, the certificate
is fetched from SigningCertURL, the canonical string is rebuilt from the
message's fields (SNS's documented scheme), and the signature is checked with
the `cryptography` package: SHA1withRSA for SignatureVersion 1, SHA256withRSA
for 2. A tampered copy of each message must fail. Exits non-zero on any failure
(including a missing module: the caller must not skip).
"""

import base64
import json
import sys
import urllib.request

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

NOTIFICATION_FIELDS = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
CONFIRMATION_FIELDS = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]


def canonical(msg):
    fields = NOTIFICATION_FIELDS if msg["Type"] == "Notification" else CONFIRMATION_FIELDS
    out = ""
    for f in fields:
        if f in msg:
            out += f + "\n" + msg[f] + "\n"
    return out.encode("utf-8")


def verify(msg, certs):
    url = msg["SigningCertURL"]
    if url not in certs:
        with urllib.request.urlopen(url, timeout=10) as r:
            certs[url] = x509.load_pem_x509_certificate(r.read())
    key = certs[url].public_key()
    algo = {"1": hashes.SHA1(), "2": hashes.SHA256()}[msg["SignatureVersion"]]
    key.verify(base64.b64decode(msg["Signature"]), canonical(msg), padding.PKCS1v15(), algo)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        bodies = json.load(f)
    certs = {}
    versions = set()
    for body in bodies:
        msg = json.loads(body)
        verify(msg, certs)
        versions.add(msg["SignatureVersion"])
        tampered = dict(msg, Message=msg["Message"] + " ")
        try:
            verify(tampered, certs)
        except InvalidSignature:
            pass
        else:
            raise SystemExit("a tampered message verified: " + msg["MessageId"])
    print("verified %d messages, signature versions %s" % (len(bodies), sorted(versions)))


if __name__ == "__main__":
    main()
