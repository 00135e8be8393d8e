#!/usr/bin/env python3
"""A push service for the tests (tests/tests/push.rs): an HTTPS server on
127.0.0.1 that stands in for a browser vendor's push service or a UnifiedPush
distributor, and for the device behind it.

It makes the device's subscription keys (an ECDH P-256 key pair and a 16-byte
auth secret), prints them, and for every POST verifies the VAPID signature
(py_vapid) and decrypts the RFC 8291 payload (http_ece) with them: libraries
that share no code with imboxd. One JSON line per event on stdout:

  {"event": "listening", "port": N, "p256dh": B64URL, "auth": B64URL}
  {"event": "push", "path": ..., "status": ..., "vapid_ok": ..., "k": ...,
   "claims": {...}, "payload": ..., "headers": {...}, "error": ...}
  {"event": "held", "path": ...}

The path chooses the answer: /ok/... 201, /gone/... 410, /hang/... none at all
(the request is held open until the process ends), /busy/... 503 with
Retry-After: 1 the first time and 201 after.
"""

import argparse
import os
import base64
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import py_vapid
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import serialization

LOCK = threading.Lock()
BUSY_SEEN = set()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def say(**fields):
    with LOCK:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()


def parse_vapid(header):
    """RFC 8292: `vapid t=JWT, k=KEY` (auth-params, comma and optional spaces)."""
    scheme, _, params = header.partition(" ")
    if scheme.lower() != "vapid":
        raise ValueError("the Authorization scheme is %r, not vapid" % scheme)
    parts = {}
    for item in params.split(","):
        key, _, value = item.strip().partition("=")
        parts[key] = value
    return parts["t"], parts["k"]


def make_handler(private_key, auth):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            mode = self.path.strip("/").split("/")[0]
            if mode == "hang":
                say(event="held", path=self.path)
                threading.Event().wait()
                return
            record = {"event": "push", "path": self.path, "error": None}
            record["headers"] = {
                name: self.headers.get(name)
                for name in ("TTL", "Urgency", "Topic", "Content-Encoding", "Content-Type")
            }
            try:
                token, key = parse_vapid(self.headers.get("Authorization", ""))
                record["k"] = key
                # py_vapid's own header parser wants no space after the comma.
                record["vapid_ok"] = bool(py_vapid.Vapid02.verify("vapid t=%s,k=%s" % (token, key)))
                record["claims"] = json.loads(unb64url(token.split(".")[1]))
                record["jwt_header"] = json.loads(unb64url(token.split(".")[0]))
                plain = http_ece.decrypt(body, private_key=private_key, auth_secret=auth, version="aes128gcm")
                record["payload"] = plain.decode()
            except Exception as e:  # reported, and the test fails on it
                record["error"] = "%s: %s" % (type(e).__name__, e)
            status = 201
            if mode == "gone":
                status = 410
            elif mode == "busy":
                with LOCK:
                    first = self.path not in BUSY_SEEN
                    BUSY_SEEN.add(self.path)
                status = 503 if first else 201
            record["status"] = status
            say(**record)
            self.send_response(status)
            if status == 503:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()

    private_key = ec.generate_private_key(ec.SECP256R1())
    public = private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    auth = os.urandom(16)

    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(private_key, auth))
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    say(event="listening", port=server.server_address[1], p256dh=b64url(public), auth=b64url(auth))
    server.serve_forever()


if __name__ == "__main__":
    main()
