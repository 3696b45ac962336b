#!/usr/bin/env bash
# Instructions per request for each hot-path variant, counted by callgrind:
# (instructions for N2 requests - instructions for N1 requests) / (N2 - N1),
# so set-up costs cancel out. Deterministic for a given binary.
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${N1:-2000}
N2=${N2:-12000}
bin=$(cargo bench -p tower-client-auth-benches --bench hot_path_icount --no-run --message-format=json ${FEATURES:+--features "$FEATURES"} 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="hot_path_icount" and m.get("executable"):
        print(m["executable"])')
count() {
  ICOUNT_VARIANT=$1 ICOUNT_N=$2 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-32s %12s\n' variant instr/request
for v in bare tower_http_add_authorization add_auth_plus_request_clone tower_retry_add_authorization \
         static_bearer static_bearer_no_retry oauth2_cached oauth2_cached_no_retry two_headers_cached two_headers_cached_retry \
         two_headers_tower_http naive_rwlock users_cached users_cached_no_retry \
         oauth2_cached_with_user_ext oauth2_cached_no_retry_with_user_ext ${EXTRA:-}; do
  a=$(count "$v" "$N1"); b=$(count "$v" "$N2")
  printf '%-32s %12d\n' "$v" $(( (b - a) / (N2 - N1) ))
done
