"""whole.py - ROC-AUC and TPR at 1% FPR of the whole scorer from `train_injection opinions` output.

    python3 whole.py FOLD.tsv...

Each file is one model's opinions (rules' risk, model's risk) on the attack rows it never saw, the
corpus's calibration rows and the mail outside the corpus. The score is what ingest publishes: the
mean of the two opinions (risk::summarise). Files are pooled: every attack is scored by a model
that never saw its source. The model's own risk is shown beside it.
"""
import collections
import sys

from score import roc_auc as auc


def tpr_at(attacks, benign, fpr=0.01):
    """Share of attacks above the benign scores' (1 - fpr) quantile: train_injection's reading,
    so its figures and these compare (score.py's scans every threshold, too slow at 10,000s)."""
    b = sorted(benign)
    t = b[round((len(b) - 1) * (1 - fpr))]
    return sum(s > t for s in attacks) / len(attacks)


def main(paths):
    scores = {'whole': collections.defaultdict(list), 'model': collections.defaultdict(list)}
    by_family = collections.defaultdict(list)
    for path in paths:
        for line in open(path):
            kind, _id, family, rules, model = line.rstrip('\n').split('\t')[:5]
            rules, model = float(rules), float(model)
            scores['whole'][kind].append((rules + model) / 2)
            scores['model'][kind].append(model)
            if kind == 'attack':
                by_family[family].append((rules + model) / 2)
    for name, s in scores.items():
        a, cal, out = s['attack'], s['calibration'], s['outside']
        print(f'{name:6} {len(a)} attacks | calibration rows ({len(cal)}): ROC-AUC {auc(a, cal):.4f}, '
              f'TPR at 1% FPR {tpr_at(a, cal):.3f} | outside ({len(out)}): ROC-AUC {auc(a, out):.4f}, '
              f'TPR at 1% FPR {tpr_at(a, out):.3f}, at medium {sum(x >= 0.4 for x in out)}')
    print('whole scorer, recall at medium (0.4) / high (0.7) by family:')
    for family, s in sorted(by_family.items()):
        print(f'  {family:38} {len(s):5} {sum(x >= 0.4 for x in s) / len(s):.3f} {sum(x >= 0.7 for x in s) / len(s):.3f}')


if __name__ == '__main__':
    try:
        main(sys.argv[1:])
    except BrokenPipeError:
        pass
