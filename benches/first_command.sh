#!/usr/bin/env bash
# A newcomer's first command, cold: `cargo run --example demo` with 2 jobs and
# an empty target directory, for each commit given (default: HEAD), built in
# a scratch worktree. Prints build and run seconds and the crates compiled.
#   bash benches/first_command.sh b3838d9 HEAD
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
scratch="${TMPDIR:-/tmp}/tca-first-command"
[ $# -gt 0 ] || set -- HEAD
for rev in "$@"; do
  rm -rf "$scratch"
  git -C "$repo" worktree add --detach "$scratch/tree" "$rev" >/dev/null 2>&1
  cd "$scratch/tree"
  s=$(date +%s.%N)
  CARGO_TARGET_DIR="$scratch/target" cargo build -j2 --example demo >"$scratch/build.log" 2>&1
  m=$(date +%s.%N)
  CARGO_TARGET_DIR="$scratch/target" cargo run -j2 --example demo >/dev/null 2>&1
  e=$(date +%s.%N)
  printf '%-10s build %5.1f s (%3d crates compiled), run %4.1f s, total %5.1f s (load %s)\n' \
    "$rev" "$(echo "$m - $s" | bc)" "$(grep -c Compiling "$scratch/build.log")" \
    "$(echo "$e - $m" | bc)" "$(echo "$e - $s" | bc)" "$(cut -d' ' -f1 /proc/loadavg)"
  cd "$repo"
  git -C "$repo" worktree remove --force "$scratch/tree"
done
rm -rf "$scratch"
