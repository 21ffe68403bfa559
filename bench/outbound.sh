#!/usr/bin/env bash
# outbound.sh - crabmail as a relay (submission in, MTA out) against Postfix as a relay, on this
# machine, in the same run: smtp-source -> server -> smtp-sink, N messages of LEN bytes over
# SESSIONS sessions (bench/smtp-relay-bench.sh measures both).
#
#   bench/outbound.sh                     # N=10000 LEN=2048 SESSIONS=20 REPS=3
#
# crabmail takes the mail on its submission port from a trusted network (no AUTH, as Postfix's
# mynetworks), routes example.test by MX (dnsmasq on loopback answers it with 127.0.0.2) and
# delivers to the sink. accepted/s: every 250 durable; end-to-end/s: until the sink counted all.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
N=${N:-10000}; LEN=${LEN:-2048}; SESSIONS=${SESSIONS:-20}; REPS=${REPS:-3}
SUB_PORT=${SUB_PORT:-12587}; API_PORT=${API_PORT:-18089}; DNS_PORT=${DNS_PORT:-15353}; SINK_PORT=${SINK_PORT:-2526}
WORK=${WORK:-/var/tmp/crabmail-bench-out}
OUT=${OUT:-$WORK/results.txt}

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "NA" }'; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

command -v smtp-source >/dev/null || "$HERE/postfix-anchor.sh" setup
command -v dnsmasq >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsmasq-base; }
mkdir -p "$WORK"
# BIN=path: a crabmail binary to measure instead of building this tree (A/B of two builds).
if [ -z "${BIN:-}" ]; then
  log "building crabmail (release)"
  (cd "$ROOT" && cargo build --release -q -p crabmail)
  BIN=$ROOT/target/release/crabmail
fi

log "Postfix relay: $N x ${LEN}B, $SESSIONS sessions, $REPS runs"
rm -f /tmp/pfbench/results.tsv
N=$N SIZES=$LEN SESSIONS=$SESSIONS REPS=$REPS SINK_PORT=$SINK_PORT "$HERE/postfix-anchor.sh" setup b stop >&2
pick() { awk -F'\t' -v c="$1" '$1 == "b_postfix_relay" && $11 == 1 { printf "%s ", $c }' /tmp/pfbench/results.tsv | median; }
PF_ACC=$(pick 4); PF_E2E=$(pick 5)

# Guardrails (quotas, the warm-up ramp, API request limits) exist from issue 12 on: the benchmark
# keeps them on but out of reach, so it measures their cost and not their limits. An older binary
# (BIN=, for an A/B) has no such settings and gets none.
guardrails() {
  "$BIN" config defaults 2>/dev/null | grep -q '^\[limits.inbox\]' || return 0
  for scope in inbox account; do
    for w in per_minute per_hour per_day recipients_per_day; do printf -- '--set limits.%s.%s=100000000 ' "$scope" "$w"; done
  done
  printf -- '--set limits.warmup.start=100000000 --set api.rate_limit=1000000 --set api.rate_burst=1000000'
}

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }
trap cleanup EXIT

# dnsmasq gives its own records a TTL of 0 unless told otherwise, which no published record has;
# DNS_TTL=300 (a common TTL for MX and TXT records) lets crabmail's resolver cache them as it would
# in production. Postfix's side does no DNS at all. DNS_TTL=0 measures a lookup for every message.
# dnsmasq is authoritative for example.test (--auth-zone), so its "no such record" answers (the
# MX host's AAAA, the MTA-STS TXT) carry the zone's SOA, as every real zone's do, and a resolver
# caches them for the SOA's negative TTL; without it, each delivery asked dnsmasq twice.
DNS_TTL=${DNS_TTL:-300}
dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=127.0.0.1 --bind-interfaces --port="$DNS_PORT" --local-ttl="$DNS_TTL" \
  --auth-ttl="$DNS_TTL" --auth-server=ns.example.test,127.0.0.1 --auth-zone=example.test \
  --mx-host=example.test,mx.example.test,10 --host-record=mx.example.test,127.0.0.2 --log-facility=- \
  > "$WORK/dnsmasq.log" 2>&1 &
PIDS+=($!)

CM_ACC=(); CM_E2E=()
for rep in $(seq 1 "$REPS"); do
  rm -rf "$WORK/data"
  # shellcheck disable=SC2046 # guardrails prints whole --set words
  CRABMAIL_LOG=warn "$BIN" serve $(guardrails) --data-dir "$WORK/data" --domain bench.local \
    --api-listen "127.0.0.1:$API_PORT" --mx-listen 127.0.0.1:0 --submissions-listen 127.0.0.1:0 \
    --submission-listen "127.0.0.1:$SUB_PORT" \
    --set 'submission.trusted_networks=["127.0.0.0/8"]' --set "dns.nameservers=[\"127.0.0.1:$DNS_PORT\"]" \
    --set "delivery.mx_port=$SINK_PORT" --set smtp.max_connections_per_ip=200 \
    > "$WORK/server.log" 2>&1 &
  SERVER=$!; PIDS+=("$SERVER")
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$API_PORT/readyz" >/dev/null && break; sleep 0.1; done
  TOKEN=$(curl -sf -X POST "http://127.0.0.1:$API_PORT/v1/accounts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  curl -sf -X POST "http://127.0.0.1:$API_PORT/v1/inboxes" -H "Authorization: Bearer $TOKEN" -d '{"name":"bench"}' >/dev/null
  RESULT=$("$HERE/smtp-relay-bench.sh" -q -n "$N" -l "$LEN" -s "$SESSIONS" -f bench@bench.local "127.0.0.1:$SUB_PORT" "$SINK_PORT" | grep '^RESULT')
  CM_ACC+=("$(echo "$RESULT" | field accept_mps)"); CM_E2E+=("$(echo "$RESULT" | field e2e_mps)")
  log "crabmail run $rep: accepted ${CM_ACC[-1]}/s, end-to-end ${CM_E2E[-1]}/s (RSS $(awk '/VmHWM/ { print int($2 / 1024) }' /proc/$SERVER/status) MiB)"
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
done
CM_ACC_M=$(echo "${CM_ACC[*]}" | median); CM_E2E_M=$(echo "${CM_E2E[*]}" | median)
{
  echo "outbound relay: $N messages x ${LEN}B, $SESSIONS sessions, one message per connection, DNS TTL ${DNS_TTL}s, medians of $REPS runs"
  printf '%-26s %12s %14s\n' "" "accepted/s" "end-to-end/s"
  printf '%-26s %12s %14s\n' "Postfix relay" "$PF_ACC" "$PF_E2E"
  printf '%-26s %12s %14s\n' "crabmail (SQLite)" "$CM_ACC_M" "$CM_E2E_M"
  printf '%-26s %12s %14s\n' "crabmail / Postfix" "$(ratio "$CM_ACC_M" "$PF_ACC")x" "$(ratio "$CM_E2E_M" "$PF_E2E")x"
  echo "crabmail runs: accepted ${CM_ACC[*]}; end-to-end ${CM_E2E[*]}"
} | tee "$OUT"
