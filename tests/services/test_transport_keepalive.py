"""The gevent transport and an upstream that closes idle keep-alive connections without saying
so (no `Connection: close`): every POST is answered and reaches the upstream once (a closed
pooled connection is not used, or the POST is sent again on a fresh one when the close races
the send), and a connection closed with no answer at all is retried once, never looped."""
from __future__ import annotations

import socket
import threading
import time

from app.providers.base import UpstreamRequest
from app.services.transport import GeventTransport, TransportError


class ClosingServer:
    """HTTP/1.1 on loopback: answers one request per connection, then closes it."""

    def __init__(self, answer: bool = True):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.connections = 0
        self.answer = answer
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(rest) < length:
                rest += conn.recv(65536)
            self.requests += 1
            if self.answer:
                body = b'{"ok": %d}' % self.requests
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            conn.close()  # keep-alive was implied, but the connection is gone

    def close(self):
        self.sock.close()


def _post(transport, port, n):
    req = UpstreamRequest(method="POST", url=f"http://127.0.0.1:{port}/v1/chat/completions",
                          headers={"Content-Type": "application/json"}, body=b'{"n": %d}' % n)
    resp = transport.send(req, connect=2.0, read=2.0)
    try:
        return resp.status, resp.read()
    finally:
        resp.close()


def test_a_post_on_a_connection_the_upstream_closed_while_idle_is_sent_again():
    server = ClosingServer()
    transport = GeventTransport(pool_size=4)
    try:
        results = []
        for n in range(3):
            results.append(_post(transport, server.port, n))
            time.sleep(0.1)  # the server's FIN reaches the pooled socket
        assert results == [(200, b'{"ok": 1}'), (200, b'{"ok": 2}'), (200, b'{"ok": 3}')]
        assert server.requests == 3  # each request reached the upstream exactly once
    finally:
        server.close()


def test_no_answer_at_all_on_a_fresh_connection_is_still_an_error():
    server = ClosingServer(answer=False)
    transport = GeventTransport(pool_size=4)
    try:
        try:
            _post(transport, server.port, 1)
        except TransportError as exc:
            assert exc.kind == "protocol"
        else:
            raise AssertionError("a connection closed without an answer must fail")
        assert server.requests == 2  # one retry, never a loop
    finally:
        server.close()
