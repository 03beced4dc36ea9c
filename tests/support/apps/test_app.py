#!/usr/bin/python3
"""A stdlib-only test instance for wakegate's integration tests.

    python3 test_app.py [PORT] [--marker=ANYTHING ...]

Listens on 127.0.0.1:PORT (argv[1] if it is a number, else $PORT), HTTP/1.1 with keep-alive.
Extra arguments (such as --marker=<uuid>, which lets a test find its own processes in /proc)
are ignored.

Environment:
  STARTUP_DELAY_MS  wait this long before binding (a slow start)
  IGNORE_SIGTERM=1  ignore SIGTERM (to exercise stop_timeout -> SIGKILL)
  RECORD_FILE       append every byte read from any connection to this file (what an upstream saw)

Endpoints:
  GET  /              200 "ok <pid>"
  GET  /pid           200 "<pid>"
  GET  /sleep?ms=N    waits N ms, then 200 "slept N"
  GET  /bytes?n=N     N bytes, byte k = k % 251, written 64 KiB at a time, with Content-Length
  POST /echo          the request body streamed back (64 KiB reads); chunked if the request was
  GET  /headers       200 JSON object: lower-case header name -> value (repeats joined by ", ")
  GET  /exit          os._exit(1) without answering (a crash in the middle of a request)
  GET  /eof?n=N       N pattern bytes with neither Content-Length nor chunked: the body ends at close
  GET  /chunks?n=N    N pattern bytes in chunks of 1000 (Transfer-Encoding: chunked)
  GET  /partial       200 with Content-Length 100000, 1000 bytes of it, then os._exit(1) (a crash
                      in the middle of a response)
Anything else: 404.
"""

import json
import os
import signal
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CHUNK = 64 * 1024
PATTERN_PERIOD = 251
PATTERN = bytes(i % PATTERN_PERIOD for i in range(CHUNK + PATTERN_PERIOD))


class BodyError(Exception):
    pass


class Tee:
    """A connection's read side that also appends what it reads to RECORD_FILE."""

    def __init__(self, f, path):
        self._f = f
        self._path = path

    def _record(self, data):
        if data:
            with open(self._path, "ab") as out:
                out.write(data)
        return data

    def readline(self, *args):
        return self._record(self._f.readline(*args))

    def read(self, *args):
        return self._record(self._f.read(*args))

    def __getattr__(self, name):
        return getattr(self._f, name)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "wakegate-test-app"
    sys_version = ""

    def setup(self):
        super().setup()
        record = os.environ.get("RECORD_FILE")
        if record:
            self.rfile = Tee(self.rfile, record)

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    # --- request bodies -------------------------------------------------------------------

    def _is_chunked(self):
        te = self.headers.get("Transfer-Encoding", "")
        return "chunked" in te.lower()

    def _body_chunks(self):
        """Yields the request body in pieces of at most 64 KiB (Content-Length or chunked)."""
        if self._is_chunked():
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise BodyError("eof in chunk size")
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise BodyError("bad chunk size %r" % size_text)
                if size == 0:
                    # Trailers, up to the empty line.
                    while True:
                        trailer = self.rfile.readline(65536)
                        if not trailer or trailer in (b"\r\n", b"\n"):
                            return
                while size > 0:
                    data = self.rfile.read(min(size, CHUNK))
                    if not data:
                        raise BodyError("eof in chunk")
                    size -= len(data)
                    yield data
                self.rfile.readline(1024)  # the CRLF after the chunk data
        else:
            remaining = int(self.headers.get("Content-Length", "0") or "0")
            while remaining > 0:
                data = self.rfile.read(min(remaining, CHUNK))
                if not data:
                    raise BodyError("eof in body")
                remaining -= len(data)
                yield data

    def _drain_body(self):
        for _ in self._body_chunks():
            pass

    # --- responses ------------------------------------------------------------------------

    def _send(self, status, body, content_type="text/plain"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        return url.path, query

    def do_GET(self):
        path, query = self._route()
        self._drain_body()
        if path == "/":
            self._send(200, "ok %d" % os.getpid())
        elif path == "/pid":
            self._send(200, "%d" % os.getpid())
        elif path == "/sleep":
            ms = int(query.get("ms", ["0"])[0])
            time.sleep(ms / 1000.0)
            self._send(200, "slept %d" % ms)
        elif path == "/bytes":
            self._bytes(int(query.get("n", ["0"])[0]))
        elif path == "/headers":
            seen = {}
            for name, value in self.headers.items():
                key = name.lower()
                seen[key] = value if key not in seen else seen[key] + ", " + value
            self._send(200, json.dumps(seen), "application/json")
        elif path == "/exit":
            os._exit(1)
        elif path == "/eof":
            n = int(query.get("n", ["0"])[0])
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(bytes(k % 251 for k in range(n)))
            self.close_connection = True
        elif path == "/partial":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(bytes(k % 251 for k in range(1000)))
            self.wfile.flush()
            os._exit(1)
        elif path == "/chunks":
            n = int(query.get("n", ["0"])[0])
            body = bytes(k % 251 for k in range(n))
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, n, 1000):
                piece = body[i:i + 1000]
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(404, "not found\n")

    def do_POST(self):
        path, _ = self._route()
        if path == "/echo":
            self._echo()
        elif path == "/exit":
            os._exit(1)
        else:
            self._drain_body()
            self._send(404, "not found\n")

    def _bytes(self, n):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        offset = 0
        while offset < n:
            size = min(CHUNK, n - offset)
            start = offset % PATTERN_PERIOD
            self.wfile.write(PATTERN[start:start + size])
            offset += size

    def _echo(self):
        chunked = self._is_chunked()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", self.headers.get("Content-Length", "0") or "0")
        self.end_headers()
        try:
            for data in self._body_chunks():
                if chunked:
                    self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
                else:
                    self.wfile.write(data)
        except BodyError:
            self.close_connection = True
            return
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # bursts of connections from the proxy

    def handle_error(self, request, client_address):
        pass  # clients (the proxy) going away mid-response are expected in tests


def main():
    port_text = None
    if len(sys.argv) > 1 and sys.argv[1].isdigit():
        port_text = sys.argv[1]
    else:
        port_text = os.environ.get("PORT")
    if not port_text:
        sys.stderr.write("test_app: no port (argv[1] or $PORT)\n")
        sys.exit(2)
    if os.environ.get("IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    delay_ms = int(os.environ.get("STARTUP_DELAY_MS", "0") or "0")
    if delay_ms > 0:
        time.sleep(delay_ms / 1000.0)
    socketserver.TCPServer.allow_reuse_address = True
    server = Server(("127.0.0.1", int(port_text)), Handler)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
