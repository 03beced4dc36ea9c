"""Holds N connections open to HOST:PORT for bench/tls.sh's memory figures.

    tls_hold.py PORT N MODE READY_FILE STOP_FILE

MODE silent: TCP only, nothing sent (a health check, a scanner). MODE idle: a TLS handshake and one
keep-alive GET /0 (Host: bench.test), answered, then nothing. Creates READY_FILE once all are open
and waits (at most 60 s) for STOP_FILE, then closes them.
"""
import os
import socket
import ssl
import sys
import time

port, n, mode, ready, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if mode == "idle":
        s = ctx.wrap_socket(s, server_hostname="bench.test")
        s.sendall(b"GET /0 HTTP/1.1\r\nHost: bench.test\r\n\r\n")
        if not s.recv(65536).startswith(b"HTTP/1.1 200"):
            sys.exit("no 200 on an idle connection")
    held.append(s)
open(ready, "w").close()
deadline = time.monotonic() + 60
while not os.path.exists(stop) and time.monotonic() < deadline:
    time.sleep(0.05)  # polled: the bench script creates STOP_FILE once it has measured
for s in held:
    s.close()
