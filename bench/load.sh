#!/usr/bin/env bash
# Gateway load harness: the mock upstream called directly vs through the
# SecureInfer gateway, in the same run, on loopback only.
#
#   bench/load.sh                       # defaults below
#   DURATION=30 CONNECTIONS=128 RATE=2000 bench/load.sh
#
# Starts `secureinfer mock-upstream` and `secureinfer serve` (release build, free
# loopback ports, throw-away SQLite database), then for each scenario runs the
# load generator against the mock directly and against the gateway, and prints
# requests/s, p50/p99/p99.9 latency, and the overhead (gateway minus direct).
#
# Scenarios:
#   max     maximum throughput: wrk, CONNECTIONS connections, DURATION seconds
#   rate    fixed rate of RATE requests/s: oha -q (open loop, latency-corrected)
#           when oha is installed, otherwise wrk paced with a Lua delay() (a
#           closed loop; the output says which was used)
#   stream  maximum throughput with "stream": true (SSE relayed token by token)
#
# Environment (all optional):
#   DURATION=15          seconds per measured run
#   WARMUP=3             seconds of unmeasured load before each measured run
#   CONNECTIONS=64       connections for the max and stream scenarios
#   THREADS=2            wrk threads
#   RATE=1000            requests/s for the rate scenario
#   RATE_CONNECTIONS=32  connections for the rate scenario
#   MAX_TOKENS=16        max_tokens in the request (the mock emits that many)
#   SCENARIOS="max rate stream"
#   RATE_TOOL=auto       auto | oha | wrk
#   OHA=oha              oha binary (e.g. ~/.cargo/bin/oha after `cargo install oha`)
#   BIN=                 a prebuilt secureinfer binary (skips cargo build)
#   CARGO_TARGET_DIR     where cargo builds (default: <repo>/target)
#
# Needs: cargo, curl, wrk (Debian: apt-get install -y wrk); optional: oha + jq.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-15}
DURATION=${DURATION%s}
WARMUP=${WARMUP:-3}
WARMUP=${WARMUP%s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
RATE=${RATE:-1000}
RATE_CONNECTIONS=${RATE_CONNECTIONS:-32}
MAX_TOKENS=${MAX_TOKENS:-16}
SCENARIOS=${SCENARIOS:-max rate stream}
RATE_TOOL=${RATE_TOOL:-auto}
OHA=${OHA:-oha}
MODEL=secureinfer-mock

log() { printf '%s\n' "$*" >&2; }
die() { log "load.sh: $*"; exit 1; }

# --- tools -------------------------------------------------------------------
command -v curl >/dev/null || die "curl is required"
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "wrk not found: installing the Debian package"
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; } \
      || die "could not install wrk"
  else
    die "wrk is required (Debian/Ubuntu: apt-get install -y wrk)"
  fi
fi
if [ -z "${BIN:-}" ]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
  log "building secureinfer (release) in $CARGO_TARGET_DIR ..."
  cargo build --quiet --release -p secureinfer --manifest-path "$ROOT/Cargo.toml"
  BIN="$CARGO_TARGET_DIR/release/secureinfer"
fi
[ -x "$BIN" ] || die "no binary at $BIN"

case $RATE_TOOL in
  auto) if command -v "$OHA" >/dev/null && command -v jq >/dev/null; then RATE_TOOL=oha; else RATE_TOOL=wrk; fi ;;
  oha) command -v "$OHA" >/dev/null && command -v jq >/dev/null || die "RATE_TOOL=oha needs oha and jq" ;;
  wrk) ;;
  *) die "RATE_TOOL must be auto, oha or wrk" ;;
esac

# --- processes -----------------------------------------------------------------
TMP=$(mktemp -d)
PIDS=()
LOADGEN=
cleanup() {
  local pid
  if [ -n "$LOADGEN" ]; then kill "$LOADGEN" 2>/dev/null || true; fi
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_line FILE REGEX PID: waits up to 30 s for a line matching REGEX in FILE.
wait_line() {
  local i
  for i in $(seq 300); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { cat "$1" "$1.err" >&2 2>/dev/null; die "process exited early"; }
    sleep 0.1
  done
  die "timed out waiting for /$2/ in $1"
}

"$BIN" mock-upstream --host 127.0.0.1 --port 0 --latency 0ms --token-delay 0ms \
  >"$TMP/mock.out" 2>"$TMP/mock.out.err" &
MOCK_PID=$!; PIDS+=("$MOCK_PID")
wait_line "$TMP/mock.out" 'listening on http://' "$MOCK_PID"
MOCK_URL=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$TMP/mock.out" | head -1)

# Every control stays on except those whose job is to refuse this traffic: one client sending
# the same prompt thousands of times a second is, by design, over the rate limits and an
# extraction pattern. Measuring 429/403 answers would say nothing about the proxied path.
UPSTREAM=openai UPSTREAM_URL="$MOCK_URL" MODEL_NAME=$MODEL API_HOST=127.0.0.1 API_PORT=0 \
  DATABASE_URL="sqlite://$TMP/bench.db" LOG_LEVEL=warn \
  RATE_LIMIT_RPM=0 TENANT_RATE_LIMIT_RPM=0 TENANT_MAX_CONCURRENT=0 EXTRACTION_DETECTION=false \
  "$BIN" serve >"$TMP/gw.out" 2>"$TMP/gw.out.err" &
GW_PID=$!; PIDS+=("$GW_PID")
wait_line "$TMP/gw.out" 'secureinfer listening on http://' "$GW_PID"
GW_URL=$(grep 'secureinfer listening on' "$TMP/gw.out" | grep -oE 'http://127\.0\.0\.1:[0-9]+' | head -1)
KEY=$(grep 'tenant "demo"' "$TMP/gw.out" | sed -n 's/.*API key: \(sk-si-[0-9a-f-]*\).*/\1/p')
if [ -z "$KEY" ]; then
  KEY=$("$BIN" tenant create --name bench --database-url "sqlite://$TMP/bench.db" \
    | sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p')
fi
[ -n "$KEY" ] || die "could not get an API key from the gateway"
AUTH="Bearer $KEY"

body() { # body STREAM(true|false)
  printf '{"model":"%s","messages":[{"role":"user","content":"Hello, how are you today?"}],"max_tokens":%s,"stream":%s}' \
    "$MODEL" "$MAX_TOKENS" "$1"
}

# Sanity: one request each way must succeed before measuring anything.
for url in "$MOCK_URL" "$GW_URL"; do
  code=$(curl -s -o "$TMP/probe" -w '%{http_code}' --max-time 5 -H "Authorization: $AUTH" \
    -H 'Content-Type: application/json' -d "$(body false)" "$url/v1/chat/completions")
  [ "$code" = 200 ] || { cat "$TMP/probe" >&2; die "probe of $url returned HTTP $code"; }
done

# --- measurement -----------------------------------------------------------------
declare -A R
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# parse_result NAME FILE: RESULT line (from chat.lua) into R[NAME.key].
parse_result() {
  local line kv
  line=$(grep '^RESULT ' "$2" | tail -1) || { cat "$2" >&2; die "no result from the load generator"; }
  for kv in ${line#RESULT }; do R[$1.${kv%%=*}]=${kv#*=}; done
}

# run_wrk NAME URL BODY CONNS SECONDS [DELAY_MS]
run_wrk() {
  local name=$1 url=$2 b=$3 conns=$4 secs=$5 delay=${6:-} t=$THREADS
  [ "$conns" -lt "$t" ] && t=$conns
  WRK_BODY=$b WRK_AUTH=$AUTH WRK_DELAY_MS=$delay \
    wrk -t"$t" -c"$conns" -d"${secs}s" --timeout 5s -s "$ROOT/bench/chat.lua" \
    "$url/v1/chat/completions" >"$TMP/$name.wrk" 2>&1 &
  LOADGEN=$!; wait "$LOADGEN" || true; LOADGEN=
  [ -n "$name" ] && [ "$name" != warmup ] && parse_result "$name" "$TMP/$name.wrk"
  return 0
}

# run_oha NAME URL BODY CONNS SECONDS RATE
run_oha() {
  local name=$1 url=$2 b=$3 conns=$4 secs=$5 rate=$6 out="$TMP/$1.oha.json"
  "$OHA" --no-tui --output-format json -z "${secs}s" -q "$rate" --latency-correction \
    -c "$conns" -m POST -H "Authorization: $AUTH" -T application/json -d "$b" \
    "$url/v1/chat/completions" >"$out" 2>"$TMP/$name.oha.err" &
  LOADGEN=$!; wait "$LOADGEN" || true; LOADGEN=
  [ "$name" = warmup ] && return 0
  [ -s "$out" ] || { cat "$TMP/$name.oha.err" >&2; die "oha produced no output"; }
  R[$name.rps]=$(jq '.summary.requestsPerSec' "$out")
  R[$name.requests]=$(jq '[.statusCodeDistribution[]] | add // 0' "$out")
  local p
  for p in p50 p90 p99 p99.9; do
    R[$name.${p/./}_us]=$(jq --arg p "$p" '.latencyPercentiles[$p] * 1e6 | floor' "$out")
  done
  R[$name.max_us]=$(jq '.summary.slowest * 1e6 | floor' "$out")
  R[$name.non2xx]=$(jq '[.statusCodeDistribution | to_entries[] | select(.key | startswith("2") | not) | .value] | add // 0' "$out")
  R[$name.errors]=$(jq '[.errorDistribution[]] | add // 0' "$out")
}

# measure SCENARIO TARGET URL: warm-up, then the measured run with CPU accounting.
measure() {
  local sc=$1 target=$2 url=$3 name="$1.$2" g0 m0 b
  b=$(body false); [ "$sc" = stream ] && b=$(body true)
  case $sc in
    max|stream) run_wrk warmup "$url" "$b" "$CONNECTIONS" "$WARMUP" ;;
    rate) if [ "$RATE_TOOL" = oha ]; then run_oha warmup "$url" "$b" "$RATE_CONNECTIONS" "$WARMUP" "$RATE"
          else run_wrk warmup "$url" "$b" "$RATE_CONNECTIONS" "$WARMUP" "$PACE_MS"; fi ;;
  esac
  g0=$(cpu_ticks "$GW_PID"); m0=$(cpu_ticks "$MOCK_PID")
  case $sc in
    max|stream) run_wrk "$name" "$url" "$b" "$CONNECTIONS" "$DURATION" ;;
    rate) if [ "$RATE_TOOL" = oha ]; then run_oha "$name" "$url" "$b" "$RATE_CONNECTIONS" "$DURATION" "$RATE"
          else run_wrk "$name" "$url" "$b" "$RATE_CONNECTIONS" "$DURATION" "$PACE_MS"; fi ;;
  esac
  R[$name.gw_cpu]=$(( $(cpu_ticks "$GW_PID") - g0 ))
  R[$name.mock_cpu]=$(( $(cpu_ticks "$MOCK_PID") - m0 ))
}

# wrk pacing: each of RATE_CONNECTIONS connections waits PACE_MS between requests.
PACE_MS=$(( (RATE_CONNECTIONS * 1000 + RATE / 2) / RATE ))
[ "$PACE_MS" -ge 1 ] || PACE_MS=1

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "mock upstream: $MOCK_URL   gateway: $GW_URL   load average: $LOAD_BEFORE"
for sc in $SCENARIOS; do
  case $sc in max|rate|stream) ;; *) die "unknown scenario $sc" ;; esac
  for target in direct gateway; do
    url=$MOCK_URL; [ "$target" = gateway ] && url=$GW_URL
    log "  $sc / $target ..."
    measure "$sc" "$target" "$url"
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ------------------------------------------------------------------------
ms() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000 }'; }
diff_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.3f", (a - b) / 1000 }'; }
per_req_us() { awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e6 / n; else print "-" }'; }

describe() {
  case $1 in
    max) echo "max throughput: wrk, $CONNECTIONS connections, ${DURATION} s, non-streaming" ;;
    stream) echo "max throughput, streaming (SSE): wrk, $CONNECTIONS connections, ${DURATION} s" ;;
    rate) if [ "$RATE_TOOL" = oha ]; then
            echo "fixed rate $RATE req/s: oha -q $RATE --latency-correction, $RATE_CONNECTIONS connections, ${DURATION} s"
          else
            echo "paced ~$RATE req/s: wrk + Lua delay() of ${PACE_MS} ms, $RATE_CONNECTIONS connections, ${DURATION} s (closed loop: no fixed-rate generator installed)"
          fi ;;
  esac
}

echo
echo "SecureInfer gateway load test — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); load average before: $LOAD_BEFORE, after: $LOAD_AFTER"
echo "request: POST /v1/chat/completions, max_tokens=$MAX_TOKENS, mock upstream with no added latency"
echo "cpu µs/req: CPU time (user+sys) of each server process during the measured run / responses"
for sc in $SCENARIOS; do
  d="$sc.direct"; g="$sc.gateway"
  echo
  echo "== $(describe "$sc")"
  printf '%-9s %10s %9s %9s %9s %9s %9s %8s %8s %7s\n' target "req/s" "p50 ms" "p90 ms" "p99 ms" "p99.9 ms" "max ms" "gw cpu" "mock cpu" "errors"
  for t in direct gateway; do
    n="$sc.$t"
    printf '%-9s %10.0f %9s %9s %9s %9s %9s %8s %8s %7s\n' "$t" "${R[$n.rps]}" \
      "$(ms "${R[$n.p50_us]}")" "$(ms "${R[$n.p90_us]}")" "$(ms "${R[$n.p99_us]}")" \
      "$(ms "${R[$n.p999_us]}")" "$(ms "${R[$n.max_us]}")" \
      "$(per_req_us "${R[$n.gw_cpu]}" "${R[$n.requests]}")" "$(per_req_us "${R[$n.mock_cpu]}" "${R[$n.requests]}")" \
      "$(( ${R[$n.errors]} + ${R[$n.non2xx]} ))"
  done
  printf '%-9s %10s %9s %9s %9s %9s\n' overhead \
    "$(awk -v a="${R[$g.rps]}" -v b="${R[$d.rps]}" 'BEGIN { printf "%.0f%%", a / b * 100 }')" \
    "$(diff_ms "${R[$g.p50_us]}" "${R[$d.p50_us]}")" "$(diff_ms "${R[$g.p90_us]}" "${R[$d.p90_us]}")" \
    "$(diff_ms "${R[$g.p99_us]}" "${R[$d.p99_us]}")" "$(diff_ms "${R[$g.p999_us]}" "${R[$d.p999_us]}")"
done

echo
echo "targets:"
FAILED=0
for sc in $SCENARIOS; do
  n=$(( ${R[$sc.gateway.errors]:-0} + ${R[$sc.gateway.non2xx]:-0} + ${R[$sc.direct.errors]:-0} + ${R[$sc.direct.non2xx]:-0} ))
  [ "$n" -eq 0 ] || { echo "  $sc: $n requests failed or were refused: figures NOT VALID"; FAILED=1; }
done
if [ -n "${R[rate.gateway.p99_us]:-}" ]; then
  awk -v g="${R[rate.gateway.p99_us]}" -v d="${R[rate.direct.p99_us]}" -v r="$RATE" 'BEGIN {
    o = (g - d) / 1000; printf "  p99 overhead at %s req/s: %.3f ms (target < 1 ms): %s\n", r, o, (o < 1 ? "MET" : "NOT MET") }'
fi
if [ -n "${R[max.gateway.rps]:-}" ]; then
  awk -v g="${R[max.gateway.rps]}" -v d="${R[max.direct.rps]}" 'BEGIN {
    x = g / d; printf "  gateway throughput / direct: %.2f (target >= 0.50): %s\n", x, (x >= 0.5 ? "MET" : "NOT MET") }'
fi
[ "$FAILED" -eq 0 ] || exit 1
