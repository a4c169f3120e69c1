#!/usr/bin/env bash
# Model hashing throughput: secureinfer-integrity (release) vs coreutils
# sha256sum, on the same files in the same run.
#   bench/model-hash.sh [SIZE_MIB]     (default 1024)
# Cases: one file of SIZE_MIB (one core for both tools), then two files of
# SIZE_MIB/2 each (the library hashes files on all cores; sha256sum is serial).
# Each case is timed after a warm-up read so every tool sees a hot page cache
# (this measures hashing, not the disk); each tool runs 3 times, best kept.
# `openssl dgst -sha256` is shown too when present: coreutils before 9.2 has
# no SHA-NI code path, OpenSSL does, so it is the fairer single-core yardstick.
set -euo pipefail

SIZE_MIB=${1:-1024}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

cargo build --quiet --release -p secureinfer-integrity --example hash --manifest-path "$ROOT/Cargo.toml"
HASH="$CARGO_TARGET_DIR/release/examples/hash"

now() { date +%s.%N; }
# best CMD ARG REDIRECT: fastest of 3 wall-clock runs, in seconds.
best() {
  local min="" t0 t1 d
  for _ in 1 2 3; do
    t0=$(now); eval "$1 ${2:+\"$2\"} $3"; t1=$(now)
    d=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    min=$(awk -v m="$min" -v d="$d" 'BEGIN { print (m == "" || d < m) ? d : m }')
  done
  echo "$min"
}
ratio() { awk -v o="$1" -v r="$2" 'BEGIN { if (r > 0) printf "%.2fx", o / r; else print "n/a" }'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1e6 / s }'; }

run_case() {
  local label=$1 dir=$2 bytes
  bytes=$(cat "$dir"/* | wc -c)
  cat "$dir"/* > /dev/null   # warm the page cache for both tools

  local ours_s ref_s ossl_s=""
  ours_s=$(best "$HASH" "$dir" "> $TMP/ours.out")
  ref_s=$(best "cd $dir && sha256sum *" "" "> $TMP/ref.out")
  if command -v openssl > /dev/null; then
    ossl_s=$(best "cd $dir && openssl dgst -sha256 *" "" "> /dev/null")
  fi

  # Same answer as the documented pipeline, or the numbers mean nothing.
  local ours_digest ref_digest
  ours_digest=$(cut -d' ' -f1 "$TMP/ours.out")
  ref_digest=$(LC_ALL=C sort "$TMP/ref.out" | sha256sum | cut -d' ' -f1)
  [ "$ours_digest" = "$ref_digest" ] || { echo "digest mismatch: $ours_digest vs $ref_digest" >&2; exit 1; }

  local o r x=""
  o=$(mbps "$bytes" "$ours_s"); r=$(mbps "$bytes" "$ref_s")
  [ -n "$ossl_s" ] && x=$(mbps "$bytes" "$ossl_s")
  printf '%-22s %5s MB | secureinfer %5s MB/s | sha256sum %5s MB/s (%s) | openssl %5s MB/s (%s)\n' \
    "$label" "$((bytes / 1000000))" "$o" "$r" "$(ratio "$o" "$r")" "${x:--}" "$(ratio "$o" "${x:-0}")"
}

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') ($(nproc) cores, sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no))"
mkdir -p "$TMP/one" "$TMP/two"
head -c "$((SIZE_MIB << 20))" /dev/urandom > "$TMP/one/model.gguf"
run_case "1 file x ${SIZE_MIB} MiB" "$TMP/one"
rm "$TMP/one/model.gguf"
head -c "$((SIZE_MIB << 19))" /dev/urandom > "$TMP/two/model-00001.safetensors"
head -c "$((SIZE_MIB << 19))" /dev/urandom > "$TMP/two/model-00002.safetensors"
run_case "2 files x $((SIZE_MIB / 2)) MiB" "$TMP/two"
