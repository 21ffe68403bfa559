#!/usr/bin/env bash
# inbound.sh - crabmail's inbound MX against Postfix delivering to a Maildir, on this machine, in
# the same run: N messages of LEN bytes over SESSIONS parallel smtp-source sessions.
#
#   bench/inbound.sh                      # N=10000 LEN=2048 SESSIONS=20 REPS=3
#   N=2000 REPS=1 bench/inbound.sh        # a quick look
#
# For each side it reports:
#   accepted/s   messages / time until smtp-source had every 250 (each 250 is durable on both)
#   readable/s   messages / time until every message was deliverable to its reader (Postfix: in
#                the Maildir; crabmail: listed by the API)
#   peak RSS     crabmail's VmHWM (Postfix runs as many processes; not summed)
# then the crabmail/Postfix ratios, and the delay from the 250 to a long-poll's answer
# (bench/latency.py). Needs root and Debian's postfix (installed by postfix-anchor.sh setup).
#
# crabmail verifies every message before its 250 (SPF for HELO and MAIL FROM, DKIM, ARC, DMARC),
# with its DNS answered by dnsmasq on loopback, as a local caching resolver would in production;
# the Postfix side does no such checks. Set VERIFY=false to measure crabmail without them.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
N=${N:-10000}; LEN=${LEN:-2048}; SESSIONS=${SESSIONS:-20}; REPS=${REPS:-3}
MX_PORT=${MX_PORT:-12525}; API_PORT=${API_PORT:-18088}; DNS_PORT=${DNS_PORT:-15353}
VERIFY=${VERIFY:-true}
WORK=${WORK:-/var/tmp/crabmail-bench}
OUT=${OUT:-$WORK/results.txt}

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
now() { echo "$EPOCHREALTIME"; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

command -v smtp-source >/dev/null || "$HERE/postfix-anchor.sh" setup
mkdir -p "$WORK"

# BIN=path: a crabmail binary to measure instead of building this tree (A/B of two builds);
# SKIP_POSTFIX=1: crabmail alone (no ratios).
if [ -z "${BIN:-}" ]; then
  log "building crabmail (release)"
  (cd "$ROOT" && cargo build --release -q -p crabmail)
  BIN=$ROOT/target/release/crabmail
fi

# ------------------------------------------------------------------ Postfix -> Maildir
if [ "${SKIP_POSTFIX:-0}" = 1 ]; then
  PF_ACC=0; PF_E2E=0
else
log "Postfix -> Maildir: $N x ${LEN}B, $SESSIONS sessions, $REPS runs"
rm -f /tmp/pfbench/results.tsv
N=$N SIZES=$LEN SESSIONS=$SESSIONS REPS=$REPS "$HERE/postfix-anchor.sh" setup c stop >&2
PF_ACC=$(awk -F'\t' '$1 == "c_postfix_maildir" && $11 == 1 { printf "%s ", $4 }' /tmp/pfbench/results.tsv | median)
PF_E2E=$(awk -F'\t' '$1 == "c_postfix_maildir" && $11 == 1 { printf "%s ", $5 }' /tmp/pfbench/results.tsv | median)
if [ -z "$PF_ACC" ]; then   # no clean run: take all
  PF_ACC=$(awk -F'\t' '$1 == "c_postfix_maildir" { printf "%s ", $4 }' /tmp/pfbench/results.tsv | median)
  PF_E2E=$(awk -F'\t' '$1 == "c_postfix_maildir" { printf "%s ", $5 }' /tmp/pfbench/results.tsv | median)
fi
fi

# ------------------------------------------------------------------ crabmail
command -v dnsmasq >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsmasq-base; } >&2
# The sender's domain publishes SPF (which passes for 127.0.0.1) and a DMARC policy.
# dnsmasq gives its own records a TTL of 0 unless told otherwise, which no published record has;
# DNS_TTL=300 (a common TTL for MX and TXT records) lets crabmail's resolver cache them as it would
# in production. Postfix's side does no DNS at all. DNS_TTL=0 measures a lookup for every message.
# dnsmasq is authoritative for the senders' zones (--auth-zone), so its "no such record" answers
# (the latency probe's SPF, DMARC's organisational-domain fallback) carry the zone's SOA, as every
# real zone's do, and a resolver caches them; without it, each message asked dnsmasq twice.
DNS_TTL=${DNS_TTL:-300}
dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=127.0.0.1 --bind-interfaces --port="$DNS_PORT" --local-ttl="$DNS_TTL" \
  --auth-ttl="$DNS_TTL" --auth-server=ns.bench.local,127.0.0.1 --auth-zone=local --auth-zone=bench \
  --txt-record=bench.local,"v=spf1 ip4:127.0.0.1 -all" --txt-record=_dmarc.bench.local,"v=DMARC1; p=none" --log-facility=- \
  > "$WORK/dnsmasq.log" 2>&1 &
DNS_PID=$!

SERVER_PID=""
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

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
trap 'stop_server; kill "$DNS_PID" 2>/dev/null || true' EXIT

start_server() {
  rm -rf "$WORK/data"
  # shellcheck disable=SC2046 # guardrails prints whole --set words
  CRABMAIL_LOG=warn "$BIN" serve $(guardrails) --data-dir "$WORK/data" --domain bench.test \
    --mx-listen "127.0.0.1:$MX_PORT" --api-listen "127.0.0.1:$API_PORT" \
    --set smtp.max_connections_per_ip=200 --set "verify.enabled=$VERIFY" \
    --set "dns.nameservers=[\"127.0.0.1:$DNS_PORT\"]" > "$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$API_PORT/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "crabmail did not start" >&2; cat "$WORK/server.log" >&2; exit 1
}

readable_count() {   # messages listed by the API (pages of 100, following the cursor from the last look)
  python3 - "$API_PORT" "$TOKEN" "$INBOX" "$WORK/seen" <<'PY'
import json, os, sys, urllib.request
port, token, inbox, seen = sys.argv[1:]
# Each look goes on from where the last one stopped, so watching costs the server only the
# new messages (reading every page again at every look loaded it while it ingested).
n, cursor = (open(seen).read().split() if os.path.exists(seen) else ("0", "0"))
n = int(n)
while True:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/inboxes/{inbox}/messages?limit=100&after={cursor}",
                                 headers={"Authorization": f"Bearer {token}"})
    page = json.load(urllib.request.urlopen(req))
    if not page["messages"]:
        break
    n += len(page["messages"]); cursor = page["next_cursor"]
open(seen, "w").write(f"{n} {cursor}")
print(n)
PY
}

CM_ACC=(); CM_E2E=(); CM_RSS=()
for rep in $(seq 1 "$REPS"); do
  start_server
  rm -f "$WORK/seen"
  TOKEN=$(curl -sf -X POST "http://127.0.0.1:$API_PORT/v1/accounts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  INBOX=$(curl -sf -X POST "http://127.0.0.1:$API_PORT/v1/inboxes" -H "Authorization: Bearer $TOKEN" -d '{"name":"inbox"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  T0=$(now)
  timeout 600 smtp-source -M bench.local -f bench@bench.local -t inbox@bench.test -s "$SESSIONS" -m "$N" -l "$LEN" \
    "127.0.0.1:$MX_PORT" > "$WORK/source.out" 2>&1
  T1=$(now)
  for _ in $(seq 1 1200); do
    [ "$(readable_count)" -ge "$N" ] && break
    sleep 0.05
  done
  T2=$(now)
  GOT=$(readable_count)
  [ "$GOT" = "$N" ] || { echo "crabmail lists $GOT of $N messages" >&2; exit 1; }
  RSS=$(awk '/VmHWM/ { print $2 }' "/proc/$SERVER_PID/status")
  CM_ACC+=("$(rate "$N" "$T0" "$T1")"); CM_E2E+=("$(rate "$N" "$T0" "$T2")"); CM_RSS+=("$RSS")
  log "crabmail run $rep: accepted ${CM_ACC[-1]}/s, readable ${CM_E2E[-1]}/s, peak RSS $((RSS / 1024)) MiB"
  if [ "$rep" = "$REPS" ]; then
    log "latency: 250 -> long-poll answer"
    LAT=$(python3 "$HERE/latency.py" --mx "127.0.0.1:$MX_PORT" --api "127.0.0.1:$API_PORT" --token "$TOKEN" --inbox "$INBOX" --count 300)
  fi
  stop_server
done

CM_ACC_M=$(echo "${CM_ACC[*]}" | median); CM_E2E_M=$(echo "${CM_E2E[*]}" | median)
CM_RSS_M=$(echo "${CM_RSS[*]}" | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "NA" }'; }
{
  echo "inbound: $N messages x ${LEN}B payload, $SESSIONS sessions, one message per connection, DNS TTL ${DNS_TTL}s, medians of $REPS runs"
  echo "crabmail verification before 250 (SPF, DKIM, ARC, DMARC; DNS from dnsmasq on loopback): $VERIFY"
  printf '%-26s %12s %12s %14s\n' "" "accepted/s" "readable/s" "peak RSS"
  printf '%-26s %12s %12s %14s\n' "Postfix -> Maildir" "$PF_ACC" "$PF_E2E" "-"
  printf '%-26s %12s %12s %11s MiB\n' "crabmail (SQLite)" "$CM_ACC_M" "$CM_E2E_M" "$((CM_RSS_M / 1024))"
  printf '%-26s %12s %12s\n' "crabmail / Postfix" "$(ratio "$CM_ACC_M" "$PF_ACC")x" "$(ratio "$CM_E2E_M" "$PF_E2E")x"
  echo "crabmail runs: accepted ${CM_ACC[*]}; readable ${CM_E2E[*]}"
  echo "$LAT"
} | tee "$OUT"
