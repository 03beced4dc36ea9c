#!/usr/bin/python3
"""A stdlib-only test instance for wakegate's integration tests.

    python3 test_app.py [PORT] [--marker=ANYTHING ...]

Listens on 127.0.0.1:PORT (argv[1] if it is a number, else $PORT), HTTP/1.1 with keep-alive.
Extra arguments (such as --marker=<uuid>, which lets a test find its own processes in /proc)
are ignored.

Environment:
  STARTUP_DELAY_MS  wait this long before binding (a slow start)
  IGNORE_SIGTERM=1  ignore SIGTERM (to exercise stop_timeout -> SIGKILL)
  EXIT_AFTER_MS     exit with status 1 this long after listening (a crash loop once ready)
  RECORD_FILE       append every byte read from any connection to this file (what an upstream saw)

Endpoints:
  GET  /              200 "ok <pid>"
  GET  /pid           200 "<pid>"
  GET  /sleep?ms=N    waits N ms, then 200 "slept N"
  GET  /bytes?n=N     N bytes, byte k = k % 251, written 64 KiB at a time, with Content-Length
  POST /echo          the request body streamed back (64 KiB reads); chunked if the request was
  GET  /headers       200 JSON object: lower-case header name -> value (repeats joined by ", ")
  GET  /exit          os._exit(1) without answering (a crash in the middle of a request)
  GET  /hang-connects 200 (Connection: close), then the process stops accepting and fills its
                      listen queue: a new connection's handshake never completes (connects hang)
  GET  /unlisten?ms=M 200 (Connection: close), then the listening socket closes (new connections
                      are refused) and M ms later the process kills itself with SIGKILL: an
                      instance the proxy sees fail before it exits (use with IGNORE_SIGTERM=1)
  GET|POST /await-close?file=F[&head=1][&ms=N]
                      no answer (with head=1: a chunked 200 head and one chunk, then nothing more)
                      until the proxy closes the connection, then creates file F; gives up after
                      N ms (default 20000)
  GET  /conns         200 "<connections open to this instance now>" (this one included)
  GET  /close-later?ms=M  200 "ok" (keep-alive), then the instance closes the connection M ms later
  GET  /eof?n=N       N pattern bytes with neither Content-Length nor chunked: the body ends at close
                      (&together=1: the head, the body and the FIN in one TCP segment)
  GET  /chunks?n=N    N pattern bytes in chunks of 1000 (Transfer-Encoding: chunked)
  GET  /chunks?n=N&field=M  the same, with a field X-Big of M bytes in its head
  GET  /partial       200 with Content-Length 100000, 1000 bytes of it, then os._exit(1) (a crash
                      in the middle of a response; ?together=1: those bytes and the FIN in one
                      TCP segment, so the proxy's read returns the bytes and consumes the FIN;
                      ?length=N: Content-Length N instead; ?close=1: close the connection
                      and keep running instead of exiting)
  GET  /split?n=N&ms=M  the head, then M ms later N pattern bytes with Content-Length (a response
                      that reaches the proxy in two pieces; &nobuffer=1: with X-Accel-Buffering: no)
  GET  /extra?ms=M&done=PATH  200 "ok", then M ms later, unasked, a second response on the same
                      connection ("SMUGGLED", or with &close=1 a 408 and the close a keep-alive
                      timeout sends), then creates the file PATH (the test's sign it was sent)
  GET  /events?n=N&gate=PATH  chunked, one chunk "event K\n" at a time; before event K+1 it waits
                      (at most 5 s) for the file PATH.K, which the test creates once it got
                      event K: a proxy that holds a chunk back until the next never gets one.
                      An event sent after the wait ran out reads "late K\n".
  GET  /raw?r=BYTES   writes BYTES (percent-encoded, Latin-1) as they are, then closes: a response
                      of any shape (&keep=1: closes only when the proxy does, or after 10 s)
  GET  /overrun?n=N  a head (Content-Length N, X-Accel-Buffering: no), then 20 ms later the N
                      bytes with a second, unasked response ("SMUGGLED") in the same write
  GET  /ws            WebSocket (RFC 6455): 101 handshake, then every data frame echoed back
                      (unmasked), ping answered with pong, close answered with close
Anything else: 404.
"""

import base64
import hashlib
import json
import os
import signal
import socket
import socketserver
import sys
import threading
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

    open_connections = 0  # connections being served now (GET /conns)
    open_lock = threading.Lock()

    def setup(self):
        super().setup()
        with Handler.open_lock:
            Handler.open_connections += 1
        record = os.environ.get("RECORD_FILE")
        if record:
            self.rfile = Tee(self.rfile, record)

    def finish(self):
        try:
            super().finish()
        finally:
            with Handler.open_lock:
                Handler.open_connections -= 1

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

    def _await_close(self, query):
        # Whether the proxy closes this connection while the request waits for its answer.
        self.close_connection = True
        if query.get("head", ["0"])[0] == "1":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"6\r\nfirst\n\r\n")
            self.wfile.flush()
        deadline = time.monotonic() + int(query.get("ms", ["20000"])[0]) / 1000
        sock = self.connection
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if sock.recv(1, socket.MSG_PEEK) == b"":
                    break  # closed by the proxy
                time.sleep(0.01)  # bytes of a next request: the wait goes on, bounded by the deadline
            except socket.timeout:
                return  # never closed
            except OSError:
                break  # reset by the proxy
        else:
            return
        with open(query["file"][0], "w") as f:
            f.write("closed\n")

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

    def _cork(self, query):
        """With ?together=1: hold what is written next (TCP_CORK) until _fin() sends it with the
        FIN, in one segment. Returns whether it did."""
        if query.get("together", ["0"])[0] != "1":
            return False
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        return True

    def _fin(self):
        """Ends the corked write with the FIN: the kernel sets FIN on the pending segment."""
        self.connection.shutdown(socket.SHUT_WR)

    def _route(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query, encoding="latin-1")
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
        elif path == "/crashhead":  # part of a status line, then the process dies
            self.wfile.write(b"HTTP/1.1 2")
            self.wfile.flush()
            os._exit(1)
        elif path == "/hang-connects":
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
            threading.Thread(target=_hang_connects, args=(self.server,), daemon=False).start()
        elif path == "/unlisten":
            ms = int(query.get("ms", ["0"])[0])
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"unlisten\r\n")
            self.wfile.flush()
            threading.Thread(target=_unlisten, args=(self.server, ms), daemon=False).start()  # outlives main
        elif path == "/await-close":
            self._await_close(query)
        elif path == "/conns":
            self._send(200, "%d" % Handler.open_connections)
        elif path == "/close-later":
            self._send(200, "ok")
            self.wfile.flush()
            time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
            self.connection.shutdown(socket.SHUT_WR)  # the FIN goes out before the handler ends (and /conns drops)
            self.close_connection = True
        elif path == "/drop":  # the connection closed without an answer; the process lives on
            self.close_connection = True
        elif path == "/ws":
            self._websocket()
        elif path == "/eof":
            n = int(query.get("n", ["0"])[0])
            together = self._cork(query)
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(bytes(k % 251 for k in range(n)))
            if together:
                self._fin()
            self.close_connection = True
        elif path == "/partial":
            together = self._cork(query)
            self.send_response(200)
            self.send_header("Content-Length", query.get("length", ["100000"])[0])
            self.end_headers()
            self.wfile.write(bytes(k % 251 for k in range(1000)))
            self.wfile.flush()
            if together:
                self._fin()
            if query.get("close", ["0"])[0] == "1":
                if not together:
                    self._fin()
                self.close_connection = True
                return
            os._exit(1)
        elif path == "/split":
            n = int(query.get("n", ["0"])[0])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            if query.get("nobuffer", ["0"])[0] == "1":
                self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            self.wfile.flush()
            time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
            self.wfile.write(bytes(k % 251 for k in range(n)))
        elif path == "/extra":
            self._send(200, "ok")
            self.wfile.flush()
            time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
            if query.get("close", ["0"])[0] == "1":
                self.wfile.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                self.wfile.flush()
                self._fin()
                self.close_connection = True
            else:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED")
                self.wfile.flush()
            with open(query["done"][0], "w"):
                pass
        elif path == "/raw":
            self.wfile.write(query["r"][0].encode("latin-1"))
            self.wfile.flush()
            if query.get("keep") == ["1"]:  # then wait (at most 10 s) for the proxy to close
                self.connection.settimeout(10)
                try:
                    while self.connection.recv(65536):
                        pass
                except OSError:
                    pass
            self._fin()
            self.close_connection = True
        elif path == "/overrun":
            n = int(query.get("n", ["0"])[0])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            self.wfile.flush()
            time.sleep(int(query.get("ms", ["20"])[0]) / 1000)
            self.wfile.write(bytes(k % 251 for k in range(n)) + b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED")
            self.wfile.flush()
        elif path == "/events":
            n = int(query.get("n", ["1"])[0])
            gate = query["gate"][0]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for k in range(1, n + 1):
                word = b"event"
                if k > 1:
                    deadline = time.monotonic() + 5
                    while not os.path.exists("%s.%d" % (gate, k - 1)) and time.monotonic() < deadline:
                        time.sleep(0.01)  # poll for the gate file, until the deadline
                    if not os.path.exists("%s.%d" % (gate, k - 1)):
                        word = b"late"
                piece = b"%s %d\n" % (word, k)
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/chunks":
            n = int(query.get("n", ["0"])[0])
            body = bytes(k % 251 for k in range(n))
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            if "field" in query:
                self.send_header("X-Big", "a" * int(query["field"][0]))
            self.end_headers()
            for i in range(0, n, 1000):
                piece = body[i:i + 1000]
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(404, "not found\n")

    def do_HEAD(self):  # only /crashhead; any other HEAD gets what BaseHTTPRequestHandler gives
        if urlsplit(self.path).path == "/crashhead":
            self.wfile.write(b"HTTP/1.1 2")
            self.wfile.flush()
            os._exit(1)
        self.send_error(501, "Unsupported method ('HEAD')")

    def do_POST(self):
        path, query = self._route()
        if path == "/echo":
            self._echo()
        elif path == "/exit":
            os._exit(1)
        elif path == "/await-close":
            self._drain_body()
            self._await_close(query)
        elif path == "/ignore-body":  # reads none of the body for `ms`, then closes without an answer
            time.sleep(int(query.get("ms", ["5000"])[0]) / 1000.0)
            self.close_connection = True
        else:
            self._drain_body()
            self._send(404, "not found\n")

    # --- WebSocket (RFC 6455) -------------------------------------------------------------

    WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def _read_exact(self, n):
        data = b""
        while len(data) < n:
            piece = self.rfile.read(n - len(data))
            if not piece:
                raise EOFError()
            data += piece
        return data

    def _ws_send(self, opcode, payload, fin=True):
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + n.to_bytes(2, "big")
        else:
            head += bytes([127]) + n.to_bytes(8, "big")
        self.wfile.write(head + payload)

    def _websocket(self):
        key = self.headers.get("Sec-WebSocket-Key", "")
        upgrade = self.headers.get("Upgrade", "").lower()
        connection = self.headers.get("Connection", "").lower()
        if not key or upgrade != "websocket" or "upgrade" not in connection:
            self._send(400, "not a websocket handshake: upgrade=%r connection=%r\n" % (upgrade, connection))
            return
        accept = base64.b64encode(hashlib.sha1((key + self.WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.close_connection = True
        try:
            while True:
                b0, b1 = self._read_exact(2)
                fin = bool(b0 & 0x80)
                opcode = b0 & 0x0F
                n = b1 & 0x7F
                if n == 126:
                    n = int.from_bytes(self._read_exact(2), "big")
                elif n == 127:
                    n = int.from_bytes(self._read_exact(8), "big")
                mask = self._read_exact(4) if b1 & 0x80 else b"\0\0\0\0"
                payload = bytearray(self._read_exact(n))
                for i in range(n):
                    payload[i] ^= mask[i % 4]
                if opcode == 0x8:  # close: answer with close, then end
                    self._ws_send(0x8, bytes(payload[:2]))
                    return
                if opcode == 0x9:  # ping
                    self._ws_send(0xA, bytes(payload))
                elif opcode in (0x0, 0x1, 0x2):  # data (continuation, text, binary): echoed
                    self._ws_send(opcode, bytes(payload), fin)
        except (EOFError, OSError, ValueError):
            return

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


_queue_fillers = []


def _hang_connects(server):
    server.shutdown()  # nothing accepts any more
    server.socket.listen(0)  # a queue of one: full after the connection below, SYNs are dropped
    port = server.socket.getsockname()[1]
    for _ in range(2):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        _queue_fillers.append(filler)
    while True:  # not a daemon thread: keeps the process up (a signal ends it) after main returns
        time.sleep(3600)


def _unlisten(server, ms):
    server.shutdown()
    server.server_close()
    time.sleep(ms / 1000.0)
    os.kill(os.getpid(), signal.SIGKILL)


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
    exit_ms = int(os.environ.get("EXIT_AFTER_MS", "0") or "0")
    if exit_ms > 0:
        threading.Timer(exit_ms / 1000.0, lambda: os._exit(1)).start()
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
