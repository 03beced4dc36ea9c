#!/usr/bin/env bash
# Makes Docker usable for the Docker backend's tests (scripts/test.sh runs it; idempotent):
#  1. starts `dockerd` in the background when no daemon answers (log: $WAKEGATE_DOCKERD_LOG,
#     default /tmp/wakegate-dockerd.log) and waits for it, at most 60 s;
#  2. builds the test image wakegate-test/httpd:1 when it is missing, with no registry: `docker import`
#     of a root filesystem made from Debian's busybox-static, serving `busybox httpd` on port 8080
#     (tests/support/docker/ holds its pages and CGI scripts).
# docker.io and busybox-static come from scripts/deps.sh. Exits 0 when Docker is usable; otherwise
# prints why and exits 1 (the Docker tests then report SKIPPED with that reason).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

image=wakegate-test/httpd:1
log=${WAKEGATE_DOCKERD_LOG:-/tmp/wakegate-dockerd.log}

fail() {
  echo "docker-up.sh: $*" >&2
  exit 1
}

answers() { timeout 10 docker version >/dev/null 2>&1; }

command -v docker >/dev/null || fail "the docker client is not installed (docker.io)"
if ! answers; then
  command -v dockerd >/dev/null || fail "dockerd is not installed (docker.io)"
  ((EUID == 0)) || fail "no Docker daemon answers and only root can start one"
  echo "docker-up.sh: starting dockerd (log: $log)"
  nohup dockerd >"$log" 2>&1 </dev/null &
  deadline=$((SECONDS + 60))
  until answers; do
    if ! kill -0 $! 2>/dev/null; then
      fail "dockerd exited at start: $(tail -n 5 "$log" | tr '\n' ' ')"
    fi
    ((SECONDS < deadline)) || fail "dockerd did not answer within 60 s: $(tail -n 5 "$log" | tr '\n' ' ')"
    sleep 0.2
  done
fi

if ! docker image inspect "$image" >/dev/null 2>&1; then
  [[ -x /bin/busybox ]] || fail "/bin/busybox is missing (busybox-static)"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/www/cgi-bin" "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh httpd sleep hostname cat echo env; do ln -s busybox "$root/bin/$applet"; done
  cp tests/support/docker/index.html "$root/www/index.html"
  for cgi in tests/support/docker/cgi-bin/*; do install -m 0755 "$cgi" "$root/www/cgi-bin/"; done
  # PID 1 ignores SIGTERM unless it handles it: the shell traps it, so `docker stop` is quick.
  tar -C "$root" -c . | docker import \
    --change 'CMD ["/bin/sh", "-c", "trap \"exit 0\" TERM; /bin/httpd -f -p ${PORT:-8080} -h /www & wait"]' \
    --change 'EXPOSE 8080' - "$image" >/dev/null
  echo "docker-up.sh: built $image"
fi
