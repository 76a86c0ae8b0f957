"""Upstream HTTP clients behind one small interface.

`GeventTransport` (geventhttpclient: C parser, gevent-native, one keep-alive pool per upstream
host) is the hot-path default; the Proxy issue's benchmark figures put it at ~0.8 ms CPU per
request against ~2.5 ms for `requests`. `RequestsTransport` is kept for tests that fake
upstreams with `responses` and for environments without gevent (GATEWAY_HTTP_CLIENT=requests).
Both map failures to TransportError so the proxy core never sees client-specific exceptions.
"""
from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

from app.providers.base import UpstreamRequest

# a non-stream upstream body larger than this is refused (502); the app's transport takes
# GATEWAY_MAX_UPSTREAM_BYTES (config MAX_UPSTREAM_BYTES)
MAX_BODY = 64 * 1024 * 1024


class TransportError(Exception):
    """kind: "connect" (refused/reset/DNS), "timeout" (connect or read), "protocol"."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


class UpstreamResponse:
    status: int
    headers: dict[str, str]  # lower-case names

    max_body: int = MAX_BODY

    def read(self, limit: int | None = None) -> bytes:
        """The whole body (``limit``, default ``max_body``, bounds it)."""
        raise NotImplementedError

    def iter_chunks(self) -> Iterator[bytes]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection: back to the pool if fully read, otherwise closed."""


# ------------------------------------------------------------------------------ geventhttpclient
class _GeventResponse(UpstreamResponse):
    def __init__(self, resp, max_body: int = MAX_BODY):
        self._resp = resp
        self.max_body = max_body
        self.status = resp.status_code
        self.headers = {k.lower(): v for k, v in resp.items()}

    def read(self, limit: int | None = None) -> bytes:
        limit = limit or self.max_body
        try:
            parts, size = [], 0
            while True:
                block = self._resp.read(65536)
                if not block:
                    break
                size += len(block)
                if size > limit:
                    raise TransportError("protocol", f"upstream body larger than {limit} bytes")
                parts.append(block)
            return b"".join(parts)
        except TransportError:
            raise
        except (socket.timeout, TimeoutError) as exc:
            raise TransportError("timeout", "upstream read timed out") from exc
        except (OSError, Exception) as exc:  # parser errors, resets
            raise TransportError("protocol", f"upstream body could not be read: {type(exc).__name__}") from exc
        finally:
            self.close()

    def _read_some(self, size: int) -> bytes:
        """Whatever body bytes are available now (>=1), b"" at the end.

        geventhttpclient's public read(n) waits for n bytes, which would hold back stream chunks;
        this reads one socket recv at a time through the response's own parser (its
        `_body_buffer`/`_sock`, stable since 1.x; covered by the e2e streaming timing test).
        """
        resp = self._resp
        while True:
            buf = resp._body_buffer
            if buf:
                out = bytes(buf)
                del buf[:]
                return out
            sock = resp._sock
            if resp.message_complete or sock is None:
                return b""
            data = sock.recv(size)
            resp.feed(data)
            if not data:
                if not resp._body_buffer:
                    return b""

    def iter_chunks(self) -> Iterator[bytes]:
        try:
            while True:
                try:
                    block = self._read_some(16384)
                except (socket.timeout, TimeoutError) as exc:
                    raise TransportError("timeout", "upstream stream read timed out") from exc
                except OSError as exc:
                    raise TransportError("protocol", "upstream stream broke off") from exc
                except Exception as exc:  # HTTP parser errors mid-body
                    raise TransportError("protocol", f"upstream stream broke off ({type(exc).__name__})") from exc
                if not block:
                    return
                yield block
        finally:
            self.close()

    def close(self) -> None:
        resp, self._resp = getattr(self, "_resp", None), None
        if resp is not None:
            resp.release()


class GeventTransport:
    def __init__(self, pool_size: int = 512, max_body: int = MAX_BODY):
        self.pool_size = pool_size
        self.max_body = max_body
        self._clients: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def _client(self, scheme: str, host: str, port: int, connect: float, read: float):
        key = (scheme, host, port, connect, read)
        client = self._clients.get(key)
        if client is None:
            from geventhttpclient import HTTPClient
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client = HTTPClient(host, port, ssl=scheme == "https",
                                        connection_timeout=connect, network_timeout=read,
                                        concurrency=self.pool_size, block_size=16384)
                    self._clients[key] = client
        return client

    def send(self, req: UpstreamRequest, connect: float, read: float) -> UpstreamResponse:
        parts = urlsplit(req.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        client = self._client(parts.scheme, parts.hostname or "", port, connect, read)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            resp = self._request(client, req, path)
        except (socket.timeout, TimeoutError) as exc:
            raise TransportError("timeout", "upstream did not answer in time") from exc
        except socket.gaierror as exc:
            raise TransportError("connect", "upstream host name could not be resolved") from exc
        except ConnectionRefusedError as exc:
            raise TransportError("connect", "upstream refused the connection") from exc
        except ssl.SSLError as exc:
            raise TransportError("connect", "TLS handshake with the upstream failed") from exc
        except OSError as exc:
            raise TransportError("connect", f"upstream connection failed ({type(exc).__name__})") from exc
        except Exception as exc:  # geventhttpclient parse errors, closed connections
            raise TransportError("protocol", f"upstream sent an invalid response ({type(exc).__name__})") from exc
        return _GeventResponse(resp, self.max_body)

    @staticmethod
    def _request(client, req: UpstreamRequest, path: str):
        """One request; once more on a fresh connection when a pooled keep-alive connection
        turns out to be closed before any byte of a response came back (the upstream dropped
        it while idle: load balancers and providers do so after seconds to minutes).
        geventhttpclient retries only idempotent methods; a POST that got no response at all
        on a reused connection is retried like the official OpenAI SDKs retry connection
        errors. Timeouts and answers, even bad ones, are never retried here."""
        from geventhttpclient.response import HTTPConnectionClosed
        body = req.body or b""
        try:
            return client.request(req.method, path, body=body, headers=req.headers)
        except (HTTPConnectionClosed, ConnectionResetError, BrokenPipeError):
            return client.request(req.method, path, body=body, headers=req.headers)


# ------------------------------------------------------------------------------------ requests
class _RequestsResponse(UpstreamResponse):
    def __init__(self, resp, max_body: int = MAX_BODY):
        self.max_body = max_body
        self._resp = resp
        self.status = resp.status_code
        self.headers = {k.lower(): v for k, v in resp.headers.items()}

    def read(self, limit: int | None = None) -> bytes:
        import requests
        limit = limit or self.max_body
        try:
            data = self._resp.content
        except requests.exceptions.Timeout as exc:
            raise TransportError("timeout", "upstream read timed out") from exc
        except requests.RequestException as exc:
            raise TransportError("protocol", "upstream body could not be read") from exc
        finally:
            self.close()
        if len(data) > limit:
            raise TransportError("protocol", f"upstream body larger than {limit} bytes")
        return data

    def iter_chunks(self) -> Iterator[bytes]:
        import requests
        try:
            for block in self._resp.iter_content(chunk_size=None):
                if block:
                    yield block
        except requests.exceptions.Timeout as exc:
            raise TransportError("timeout", "upstream stream read timed out") from exc
        except requests.RequestException as exc:
            raise TransportError("protocol", "upstream stream broke off") from exc
        finally:
            self.close()

    def close(self) -> None:
        resp, self._resp = getattr(self, "_resp", None), None
        if resp is not None:
            resp.close()


class RequestsTransport:
    def __init__(self, max_body: int = MAX_BODY):
        import requests
        self._session = requests.Session()
        self.max_body = max_body

    def send(self, req: UpstreamRequest, connect: float, read: float) -> UpstreamResponse:
        import requests
        try:
            resp = self._session.request(req.method, req.url, headers=req.headers, data=req.body,
                                         timeout=(connect, read), stream=True, allow_redirects=False)
        except requests.exceptions.Timeout as exc:
            raise TransportError("timeout", "upstream did not answer in time") from exc
        except requests.exceptions.ConnectionError as exc:
            text = str(exc)
            if "resolve" in text or "Name or service" in text:
                raise TransportError("connect", "upstream host name could not be resolved") from exc
            if "refused" in text.lower():
                raise TransportError("connect", "upstream refused the connection") from exc
            raise TransportError("connect", "upstream connection failed") from exc
        except requests.RequestException as exc:
            raise TransportError("protocol", f"upstream request failed ({type(exc).__name__})") from exc
        return _RequestsResponse(resp, self.max_body)


def make_transport(kind: str, max_body: int = MAX_BODY):
    if kind == "requests":
        return RequestsTransport(max_body)
    return GeventTransport(max_body=max_body)
