#!/usr/bin/env python3
"""A token service for the bearer-token flow of the distribution registry, for tests.

Usage: token_service.py PORT KEY CERT ISSUER TTL USERS PRIVATE [--get-refuses-credentials]

  USERS    comma-separated user:password pairs (may be empty)
  PRIVATE  comma-separated repositories that anonymous clients may not pull
  --get-refuses-credentials  answer 401 to GET requests carrying basic credentials, so
                             clients must use the OAuth2 password grant (POST)

Tokens are RS256 JWTs signed with KEY (by the openssl command line tool); their header's
`kid` is the libtrust key id of CERT's public key, which the registry looks up in its
`rootcertbundle`. One JSON line per request is printed on standard output.
"""
import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, key, cert, issuer, ttl = sys.argv[1:6]
port, ttl = int(port), int(ttl)
users = dict(p.split(":", 1) for p in sys.argv[6].split(",") if p)
private = set(r for r in sys.argv[7].split(",") if r)
get_refuses_credentials = "--get-refuses-credentials" in sys.argv[8:]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def key_id(cert_path):
    pub = subprocess.run(["openssl", "x509", "-in", cert_path, "-noout", "-pubkey"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         check=True, capture_output=True).stdout
    digest = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(digest[i:i + 4] for i in range(0, len(digest), 4))


KID = key_id(cert)


def jwt(claims):
    header = {"typ": "JWT", "alg": "RS256", "kid": KID}
    signing_input = ".".join(b64url(json.dumps(x, separators=(",", ":")).encode())
                             for x in (header, claims))
    signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key],
                               input=signing_input.encode(), check=True,
                               capture_output=True).stdout
    return signing_input + "." + b64url(signature)


def access_for(user, scopes):
    granted = []
    for scope in scopes:
        for item in scope.split():
            parts = item.split(":")
            if len(parts) < 3 or parts[0] != "repository":
                continue
            name = ":".join(parts[1:-1])
            wanted = parts[-1].split(",")
            allowed = "pull" in wanted and (user is not None or name not in private)
            granted.append({"type": "repository", "name": name,
                            "actions": ["pull"] if allowed else []})
    return granted


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def record(self, **fields):
        fields.update(method=self.command, time=time.time())
        print(json.dumps(fields), flush=True)

    def issue(self, user, service, scopes):
        now = int(time.time())
        claims = {"iss": issuer, "sub": user or "", "aud": service, "iat": now,
                  "nbf": now - 5, "exp": now + ttl, "jti": b64url(os.urandom(9)),
                  "access": access_for(user, scopes)}
        self.record(outcome="issued", user=user, scopes=scopes)
        self.answer(200, {"token": jwt(claims), "expires_in": ttl})

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            return self.answer(404, {"error": "not found"})
        query = urllib.parse.parse_qs(url.query)
        user = None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if get_refuses_credentials or users.get(name) != password:
                self.record(outcome="refused", user=name)
                return self.answer(401, {"error": "invalid credentials"})
            user = name
        self.issue(user, query.get("service", [""])[0], query.get("scope", []))

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        field = lambda k: form.get(k, [""])[0]
        if field("grant_type") != "password":
            return self.answer(400, {"error": "unsupported_grant_type"})
        if users.get(field("username")) != field("password") or field("client_id") == "":
            self.record(outcome="refused", user=field("username"))
            return self.answer(401, {"error": "invalid_grant"})
        self.issue(field("username"), field("service"), [field("scope")])


ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
print(json.dumps({"listening": port, "kid": KID}), flush=True)
server.serve_forever()
