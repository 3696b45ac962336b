#!/usr/bin/env bash
# Makes the virtualenv a Python-served test suite runs its server in:
# `tests/python-venv.sh authlib` installs tests/authlib/requirements.txt into
# target/authlib-venv (git-ignored), again only when the requirements change.
set -euo pipefail
name="${1:?usage: tests/python-venv.sh <authlib|idpy>}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
reqs="$here/$name/requirements.txt"
venv="$root/target/$name-venv"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$reqs" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
  echo "$want" > "$stamp"
fi
echo "$name: $venv"
