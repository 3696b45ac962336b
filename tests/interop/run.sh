#!/usr/bin/env bash
# Runs the interop suite (tests/interop.rs) against a real authorization server:
# django-oauth-toolkit on 127.0.0.1 with SQLite. Creates a virtualenv outside the
# source tree (target/interop-venv, git-ignored), installs the pinned packages,
# migrates, seeds clients and a user, starts the server on a free loopback port,
# runs the tests, and stops the server by its PID. Fails if anything fails: the
# suite is never skipped.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${INTEROP_VENV:-$root/target/interop-venv}"
work="$(mktemp -d)"
pid=""

cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

python="${PYTHON:-python3}"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "interop: creating virtualenv at $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" > "$stamp"
fi

export DOT_DB="$work/db.sqlite3"
export DOT_TOKEN_SECONDS="${DOT_TOKEN_SECONDS:-2}"
cd "$here"
"$venv/bin/python" manage.py migrate --noinput -v 0
session="$("$venv/bin/python" seed.py)"
port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

"$venv/bin/python" manage.py runserver "127.0.0.1:$port" --noreload > "$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health/', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "interop: the authorization server exited:" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  sleep 0.1
done
"$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health/', timeout=2)" \
  || { echo "interop: the authorization server did not come up" >&2; cat "$work/server.log" >&2; exit 1; }
echo "interop: django-oauth-toolkit on 127.0.0.1:$port (pid $pid), access tokens live ${DOT_TOKEN_SECONDS}s"

cd "$root"
status=0
DOT_BASE="http://127.0.0.1:$port" DOT_SESSION="$session" DOT_TOKEN_SECONDS="$DOT_TOKEN_SECONDS" \
  cargo test --test interop -- --test-threads=2 "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "interop: server log (last 50 lines):" >&2
  tail -n 50 "$work/server.log" >&2 || true
fi
exit "$status"
