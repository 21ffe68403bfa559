#!/usr/bin/env bash
# run.sh - how well and how fast crabmail scores prompt-injection risk.
#
#   bench/injection/run.sh            # builds release, scores, prints bench/injection/score.py's report
#
# Attacks: the BIPIA-derived training set in ../shared/corpora/injection (clean service emails and
# the same emails with attacks at the start, middle and end), each row scored as a plain-text
# body. Benign mail, scored as whole .eml files through ingest's own path (HTML, hidden parts,
# attachments): the hand-written corpus under benign/own (newsletters, receipts, notifications,
# personal and work mail), the verification mail of tests/fixtures/extraction, real client replies
# (benign/talon, from talon's test fixtures) and real bounces (../shared/corpora/bounce/flufl).
# probes.jsonl: 49 attacks of 15 kinds absent from the training set (task automation, sentiment
# analysis, ciphers, base encodings, reversed text, emoji, scams, propaganda, classic overrides,
# fake system turns...), each inserted at the start, middle and end of the 50 clean emails.
# They were written while the rules were being developed, so they are not a blind test.
# Timing is per message, in-process, single-threaded, release build.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/corpora}
OUT=${OUT:-/var/tmp/crabmail-injection}
mkdir -p "$OUT"

(cd "$ROOT" && cargo build --release -q -p crabmail)
BIN=$ROOT/target/release/crabmail

ROWS=$SHARED/injection/bipia-email-train.jsonl
"$BIN" check risk --jsonl "$ROWS" > "$OUT/bipia.jsonl"
# Attacks of other kinds, phrased by us (probes.jsonl; made by make_probes.py).
"$BIN" check risk --jsonl "$HERE/probes.jsonl" > "$OUT/probes.jsonl"
"$BIN" check risk "$HERE/benign/own" > "$OUT/own.jsonl"
"$BIN" check risk "$ROOT/crates/crabmail/tests/fixtures/extraction" > "$OUT/verification.jsonl"
"$BIN" check risk "$HERE/benign/talon" > "$OUT/talon.jsonl"
# The bounces are .txt files: give them the extension the scorer reads.
mkdir -p "$OUT/flufl"
for f in "$SHARED"/bounce/flufl/*.txt; do cp "$f" "$OUT/flufl/$(basename "$f" .txt).eml"; done
"$BIN" check risk "$OUT/flufl" > "$OUT/bounces.jsonl"

BENIGN=("own-corpus=$OUT/own.jsonl" "verification=$OUT/verification.jsonl"
        "client-replies=$OUT/talon.jsonl" "bounces=$OUT/bounces.jsonl")
echo "== BIPIA training set (attacks) against all benign mail"
python3 "$HERE/score.py" "$ROWS" "$OUT/bipia.jsonl" --benign "${BENIGN[@]}"
echo
echo "== probes: attack kinds outside the training set, phrased by us"
python3 "$HERE/score.py" "$HERE/probes.jsonl" "$OUT/probes.jsonl" --benign "${BENIGN[@]}"
