#!/usr/bin/env python3
"""Cold start of a Docker app through wakegate, against the container's own start.

    scripts/docker-up.sh && bench/docker_cold_start.py [--runs 20] [--wakegate build/app/wakegate]

direct:   create + start the test container through the Engine API (as wakegate does), then poll
          GET / on its published port every 10 ms until it answers: the container's own readiness.
wakegate: one request through wakegate to the app at zero instances, until the response is in
          (wakegate probes readiness every 10 ms too); then wait until the app is at zero again.
overhead: wakegate minus direct (p50 of each). Prints p50/p99 of both and the overhead.
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

IMAGE = "wakegate-test/httpd:1"
SOCKET = "/var/run/docker.sock"
INTERVAL = 0.010


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("docker", timeout=60)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def engine(method, path, body=None):
    conn = UnixConnection(SOCKET)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, "/v1.41" + path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status >= 300 and resp.status != 304:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:200]!r}")
    return json.loads(data) if data else None


def get(port, host=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/", headers={"Host": host} if host else {})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status


def direct_once(name):
    t0 = time.perf_counter()
    created = engine("POST", "/containers/create?name=" + name, {
        "Image": IMAGE, "ExposedPorts": {"8080/tcp": {}},
        "Labels": {"wakegate-bench": "1"},
        "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}}})
    cid = created["Id"]
    engine("POST", f"/containers/{cid}/start")
    info = engine("GET", f"/containers/{cid}/json")
    port = int(info["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])
    direct_phase.append(time.perf_counter() - t0)
    while True:
        try:
            if get(port) < 500:
                break
        except OSError:
            pass
        time.sleep(INTERVAL)
    elapsed = time.perf_counter() - t0
    engine("DELETE", f"/containers/{cid}?force=1")
    return elapsed


direct_phase = []  # create + start + inspect, per direct run


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def admin_status(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/status")
    data = json.loads(conn.getresponse().read())
    conn.close()
    return data["apps"][0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--wakegate", default=os.path.join(os.path.dirname(__file__), "..", "build", "app", "wakegate"))
    args = ap.parse_args()

    direct = [direct_once(f"wakegate-bench-direct-{os.getpid()}-{i}") for i in range(args.runs)]

    app = f"bench-{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "wakegate.yaml")
        with open(cfg, "w") as f:
            f.write(f"""listen: {{http: 127.0.0.1:0, admin: 127.0.0.1:0}}
access_log: false
scale_interval: 50ms
defaults: {{scale_to_zero_after: 0s, scale_down_delay: 0s, stable_window: 1s,
            readiness: {{path: /, interval: 10ms}}}}
apps:
  - name: {app}
    hosts: [{app}.bench]
    backend:
      docker: {{image: "{IMAGE}", port: 8080, pull: never, stop_timeout: 1s}}
""")
        wg = subprocess.Popen([args.wakegate, "run", "--config", cfg], stderr=subprocess.PIPE, text=True)
        ports = {}
        for line in wg.stderr:
            rec = json.loads(line) if line.startswith("{") else {}
            if rec.get("msg") == "listening":
                ports[rec["listener"]] = int(rec["address"].rsplit(":", 1)[1])
            if rec.get("msg") == "ready":
                break
        through = []
        try:
            for _ in range(args.runs):
                deadline = time.time() + 30
                while admin_status(ports["admin"])["instances"] and time.time() < deadline:
                    time.sleep(0.02)
                t0 = time.perf_counter()
                status = get(ports["http"], f"{app}.bench")
                through.append(time.perf_counter() - t0)
                if status != 200:
                    raise RuntimeError(f"status {status}")
            conn = http.client.HTTPConnection("127.0.0.1", ports["admin"], timeout=10)
            conn.request("GET", "/metrics")
            metrics = conn.getresponse().read().decode()
            conn.close()
        finally:
            wg.terminate()
            wg.wait(30)

    ms = lambda v: f"{v * 1000:7.1f} ms"
    print(f"runs: {args.runs} each, image {IMAGE}, readiness polled every {INTERVAL * 1000:.0f} ms")
    print(f"direct (Engine API create+start, then first 2xx):  p50 {ms(percentile(direct, 50))}  p99 {ms(percentile(direct, 99))}")
    print(f"through wakegate (request at zero -> response):    p50 {ms(percentile(through, 50))}  p99 {ms(percentile(through, 99))}")
    print(f"wakegate overhead (p50 - p50):                      {ms(percentile(through, 50) - percentile(direct, 50))}"
          f"   (p99 - p99: {ms(percentile(through, 99) - percentile(direct, 99))})")
    def mean_of(phase):
        total = count = 0.0
        for line in metrics.splitlines():
            if line.startswith("wakegate_container_start_seconds_") and f'phase="{phase}"' in line:
                value = float(line.rsplit(" ", 1)[1])
                if line.startswith("wakegate_container_start_seconds_sum"):
                    total = value
                elif line.startswith("wakegate_container_start_seconds_count"):
                    count = value
        return total / count if count else float("nan")
    print(f"  direct create+start+inspect mean {ms(sum(direct_phase) / len(direct_phase))};"
          f" wakegate's create_start mean {ms(mean_of('create_start'))}, readiness mean {ms(mean_of('readiness'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
