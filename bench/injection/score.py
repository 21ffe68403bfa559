#!/usr/bin/env python3
"""Metrics for bench/injection: reads the labelled rows and crabmail's scores (both JSONL, joined
on "id") and prints ROC-AUC, the true-positive rate at 1% false positives, recall per attack
category and per position at the medium and high levels, the false-positive rate of each benign
corpus, and scoring time per message.

usage: score.py ROWS.jsonl SCORES.jsonl [--benign NAME=SCORES.jsonl ...]
(every row of a --benign file is a benign message's score, from `crabmail check risk DIR`)
"""
import json
import statistics
import sys
from collections import defaultdict

MEDIUM, HIGH = 0.4, 0.7


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def roc_auc(pos, neg):
    """Probability that a random attack scores above a random clean row (ties count half)."""
    if not pos or not neg:
        return float("nan")
    ranked = sorted([(s, 1) for s in pos] + [(s, 0) for s in neg])
    # Mann-Whitney U with average ranks for ties.
    ranks, i = {}, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        avg = (i + j + 1) / 2
        for k in range(i, j):
            ranks[k] = avg
        i = j
    pos_rank_sum = sum(ranks[k] for k, (_, label) in enumerate(ranked) if label == 1)
    u = pos_rank_sum - len(pos) * (len(pos) + 1) / 2
    return u / (len(pos) * len(neg))


def tpr_at_fpr(pos, neg, fpr):
    """Highest recall with at most `fpr` of the clean rows at or above the threshold."""
    best = 0.0
    for t in sorted(set(pos + neg + [1.01])):
        fp = sum(s >= t for s in neg) / len(neg)
        if fp <= fpr:
            tp = sum(s >= t for s in pos) / len(pos)
            best = max(best, tp)
    return best


def main():
    args = sys.argv[1:]
    benign_specs = []
    if "--benign" in args:
        i = args.index("--benign")
        benign_specs = args[i + 1:]
        args = args[:i]
    rows_path, scores_path = args
    rows = {str(r["id"]): r for r in load(rows_path)}
    scores = {str(s["id"]): s for s in load(scores_path)}
    pos, neg, micros = [], [], []
    by_cat, by_pos = defaultdict(list), defaultdict(list)
    for rid, row in rows.items():
        s = scores[rid]
        micros.append(s["micros"])
        if row["label"] == 1:
            pos.append(s["injection_risk"])
            by_cat[row["attack_category"]].append(s["injection_risk"])
            by_pos[row["position"]].append(s["injection_risk"])
        else:
            neg.append(s["injection_risk"])
    benign = []
    for spec in benign_specs:
        name, path = spec.split("=", 1)
        scored = load(path)
        benign.append((name, [s["injection_risk"] for s in scored]))
        micros.extend(s["micros"] for s in scored)
    all_neg = neg + [v for _, values in benign for v in values]

    def recall(values, level):
        return sum(v >= level for v in values) / len(values)

    print(f"rows: {len(pos)} attacks, {len(neg)} clean (training set) + "
          f"{sum(len(v) for _, v in benign)} benign messages (own corpora)")
    print(f"ROC-AUC (attacks vs training clean):        {roc_auc(pos, neg):.4f}")
    print(f"ROC-AUC (attacks vs all benign):             {roc_auc(pos, all_neg):.4f}")
    print(f"TPR at 1% FPR (vs all benign):               {tpr_at_fpr(pos, all_neg, 0.01):.4f}")
    print(f"recall at medium (>= {MEDIUM}):                  {recall(pos, MEDIUM):.4f}")
    print(f"recall at high (>= {HIGH}):                    {recall(pos, HIGH):.4f}")
    print(f"false positives at medium, training clean:   {sum(v >= MEDIUM for v in neg)}/{len(neg)}")
    for name, values in benign:
        print(f"false positives at medium, {name:<17} {sum(v >= MEDIUM for v in values)}/{len(values)}"
              f"  (high: {sum(v >= HIGH for v in values)})")
    print()
    print(f"{'attack category':<28} {'n':>5} {'>=medium':>9} {'>=high':>7}")
    for cat in sorted(by_cat):
        v = by_cat[cat]
        print(f"{cat:<28} {len(v):>5} {recall(v, MEDIUM):>9.3f} {recall(v, HIGH):>7.3f}")
    print()
    print(f"{'position':<28} {'n':>5} {'>=medium':>9} {'>=high':>7}")
    for p in sorted(by_pos):
        v = by_pos[p]
        print(f"{p:<28} {len(v):>5} {recall(v, MEDIUM):>9.3f} {recall(v, HIGH):>7.3f}")
    print()
    micros.sort()
    print(f"scoring time per message: median {statistics.median(micros):.1f} us, "
          f"p99 {micros[int(len(micros) * 0.99) - 1]:.1f} us, max {micros[-1]:.1f} us")


if __name__ == "__main__":
    main()
