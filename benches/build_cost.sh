#!/usr/bin/env bash
# What depending on the crate costs: crates in the dependency tree and a clean
# debug build (2 jobs) for a minimal user (static credentials only, no default
# features), a default one, and a full one (every library feature). Makes the
# three users in a scratch directory; run from anywhere.
set -euo pipefail
crate="$(cd "$(dirname "$0")/.." && pwd)"
scratch="${TMPDIR:-/tmp}/tca-build-cost"
rm -rf "$scratch"; mkdir -p "$scratch"
declare -A deps=(
  [minimal]='default-features = false'
  [default]=''
  [full]='features = ["https", "reqwest", "redis", "postgres", "metrics", "testing", "jose"]'
)
for u in minimal default full; do
  mkdir -p "$scratch/$u/src"
  extra=${deps[$u]}
  printf '[package]\nname = "%s-user"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\ntower-client-auth = { path = "%s"%s }\n' \
    "$u" "$crate" "${extra:+, $extra}" > "$scratch/$u/Cargo.toml"
  cat > "$scratch/$u/src/main.rs" <<'RS'
fn main() {
    let c = tower_client_auth::Credential::bearer("https://api.example.com", "pat").unwrap();
    let _layer = tower_client_auth::AuthLayer::new(c).without_retry();
}
RS
  cd "$scratch/$u"
  crates=$(cargo tree -e normal --prefix none | sed 's/ (\*)//' | sort -u | grep -vc -- "-user v")
  s=$(date +%s.%N)
  CARGO_TARGET_DIR="$scratch/target-$u" cargo build -j2 >/dev/null 2>&1
  e=$(date +%s.%N)
  printf '%-8s %4d crates  %6.1f s clean debug build\n' "$u" "$crates" "$(echo "$e - $s" | bc)"
done
