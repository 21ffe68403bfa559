#!/usr/bin/env bash
# duplicates-postfix.sh - bench/duplicates.sh's kill -9 test with Postfix as the relay, for the
# same figure on the peer: duplicates per 1,000 when every Postfix process is killed with SIGKILL
# while it relays, then started again on the same queue.
#
#   bench/duplicates-postfix.sh           # N=3000 REPS=3
#
# Each run: N messages submitted over 8 connections (the same Python client as duplicates.sh) to
# Postfix (postfix-anchor.sh's instance: durable queue, relayhost = smtp-sink); when the sink has a
# third of them, Postfix's whole session (master and every daemon) is killed with -9 and Postfix is
# started again; once the sink holds every acknowledged message and the queue is empty,
# duplicates = messages received - distinct messages. Nothing may be missing.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${N:-3000}; REPS=${REPS:-3}
export SINK_HOST=127.0.0.2 SINK_PORT=${SINK_PORT:-2529} BASE=${BASE:-/tmp/pfbench}
PF_PORT=${PF_PORT:-10025}
WORK=${WORK:-/var/tmp/crabmail-bench-dup-postfix}
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# An earlier run's kill leaves cut-off receipts in incoming/ (not mail); `postfix check` in the
# setup warns about them as the postfix user, who cannot open the maillog, and fails: clear them.
if [ -d "$BASE/etc" ] && OLD_Q=$(postconf -c "$BASE/etc" -h queue_directory 2>/dev/null) && [ -d "$OLD_Q/incoming" ]; then
  "$HERE/postfix-anchor.sh" stop >/dev/null 2>&1 || true
  find "$OLD_Q/incoming" -type f -delete
fi
KEEP_POSTFIX=1 "$HERE/postfix-anchor.sh" setup >&2
CONF=$BASE/etc
QDIR=$(postconf -c "$CONF" -h queue_directory)
SINK=""
cleanup() { [ -n "$SINK" ] && kill "$SINK" 2>/dev/null; "$HERE/postfix-anchor.sh" stop >&2 || true; }
trap cleanup EXIT

sink_subjects() { find "$WORK/sink" -type f -name 'm.*' -exec grep -h '^Subject: dup ' {} + 2>/dev/null || true; }
# Messages Postfix still holds (files of receipts the kill cut off, in incoming/, are not mail).
queued() { postqueue -c "$CONF" -j 2>/dev/null | wc -l; }

TOTAL_DUP=0; TOTAL_N=0; RUNS=()
for rep in $(seq 1 "$REPS"); do
  rm -rf "$WORK"; mkdir -p "$WORK/sink"; chmod 777 "$WORK/sink"
  smtp-sink -u nobody -d "$WORK/sink/m." "$SINK_HOST:$SINK_PORT" 256 &
  SINK=$!
  : > "$WORK/acked"
  python3 "$HERE/dup_submit.py" "$PF_PORT" "$N" "$WORK/acked" &
  SUBMIT=$!
  for _ in $(seq 1 1200); do [ "$(sink_subjects | wc -l)" -ge $((N / 3)) ] && break; sleep 0.05; done
  MASTER=$(tr -d ' ' < "$QDIR/pid/master.pid")
  pkill -9 -s "$MASTER" || true
  AT_KILL=$(sink_subjects | wc -l)
  wait "$SUBMIT" 2>/dev/null || true
  postfix -c "$CONF" start >/dev/null 2>&1
  # Mail whose delivery the kill cut off is deferred (minimum_backoff_time 300 s): try it now.
  postqueue -c "$CONF" -f
  ACKED=$(sort -u "$WORK/acked" | wc -l)
  for _ in $(seq 1 2400); do
    MISSING=$(sort -u "$WORK/acked" | comm -23 - <(sink_subjects | sort -u) | wc -l)
    [ "$MISSING" = 0 ] && [ "$(queued)" = 0 ] && break; sleep 0.1
    [ "$(queued)" = 0 ] || postqueue -c "$CONF" -f
  done
  [ "$MISSING" = 0 ] || log "run $rep: $MISSING acknowledged messages never reached the sink"
  R=$(sink_subjects | wc -l); D=$(sink_subjects | sort -u | wc -l); DUP=$((R - D))
  log "run $rep: $ACKED acknowledged, $AT_KILL at the sink at the kill; received $R, distinct $D, duplicates $DUP, missing $MISSING"
  RUNS+=("$DUP/$D"); TOTAL_DUP=$((TOTAL_DUP + DUP)); TOTAL_N=$((TOTAL_N + D))
  kill "$SINK"; wait "$SINK" 2>/dev/null || true; SINK=""
done
PER=$(awk -v d="$TOTAL_DUP" -v n="$TOTAL_N" 'BEGIN { if (n > 0) printf "%.2f", d * 1000 / n; else print "NA" }')
echo "Postfix, duplicates under kill -9 while relaying: $TOTAL_DUP in $TOTAL_N delivered ($PER per 1,000); runs (duplicates/distinct): ${RUNS[*]}"
