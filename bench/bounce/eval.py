#!/usr/bin/env python3
"""Scores `crabmail check bounce` on the flufl.bounce corpus (../shared/corpora/bounce) against
its labels: failed recipients and whether the failure is temporary.

    python3 bench/bounce/eval.py [--heldout] [--bin target/debug/crabmail]

Development uses the files not listed in heldout.txt (76 of 117); --heldout scores only the 41
kept out of development, to be run once, at the end. The labels say nothing about reasons, so
reason accuracy is not measured here.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(ROOT, "..", "shared", "corpora", "bounce")

parser = argparse.ArgumentParser()
parser.add_argument("--heldout", action="store_true")
parser.add_argument("--bin", default=os.path.join(ROOT, "target", "debug", "crabmail"))
parser.add_argument("--show", action="store_true", help="print each file that is wrong")
args = parser.parse_args()

heldout = set(open(os.path.join(HERE, "heldout.txt")).read().split())
labels = collections.defaultdict(lambda: {"recipients": set(), "temporary": False})
for label in json.load(open(os.path.join(CORPUS, "flufl-labels.json")))["labels"]:
    name = os.path.basename(label["file"])
    labels[name]["recipients"] |= {r.lower() for r in label["recipients"]}
    labels[name]["temporary"] = labels[name]["temporary"] or label["temporary"]

files = sorted(f for f in labels if (f in heldout) == args.heldout)
with tempfile.TemporaryDirectory() as tmp:
    for f in files:
        os.symlink(os.path.join(CORPUS, "flufl", f), os.path.join(tmp, f))
    out = subprocess.run([args.bin, "check", "bounce", tmp], capture_output=True, text=True, check=True)

found = collections.defaultdict(lambda: {"kind": "none", "path": None, "recipients": set(), "delayed": False})
for line in out.stdout.splitlines():
    row = json.loads(line)
    name = os.path.basename(row["file"])
    found[name]["kind"] = row["kind"]
    found[name]["path"] = row.get("path")
    if row.get("address"):
        found[name]["recipients"].add(row["address"].lower())
        found[name]["delayed"] |= row.get("action") == "delayed"

detected = exact = recalled = labelled = temp_right = 0
paths = collections.Counter()
for f in files:
    want, got = labels[f], found[f]
    paths[got["path"] or "none"] += 1
    detected += got["kind"] == "bounce"
    if want["recipients"]:
        labelled += 1
        exact += got["recipients"] == want["recipients"]
        recalled += want["recipients"] <= got["recipients"]
        temp_right += got["delayed"] == want["temporary"]
        if args.show and (got["recipients"] != want["recipients"] or got["delayed"] != want["temporary"]):
            print(f"  {f}: want {sorted(want['recipients'])} temp={want['temporary']}, "
                  f"got {sorted(got['recipients'])} delayed={got['delayed']} via {got['path']}")

split = "held-out" if args.heldout else "development"
print(f"flufl {split} split: {len(files)} files, {labelled} with labelled recipients")
print(f"  recognised as a bounce      {detected}/{len(files)} ({detected / len(files):.1%})")
print(f"  all labelled recipients found {recalled}/{labelled} ({recalled / labelled:.1%})")
print(f"  exactly the labelled ones     {exact}/{labelled} ({exact / labelled:.1%})")
print(f"  temporary/permanent right     {temp_right}/{labelled} ({temp_right / labelled:.1%})")
print("  code paths: " + ", ".join(f"{p} {n}" for p, n in paths.most_common()))
