"""Per-label threshold rules for a multi-label model, judged on the training images alone and then on the held-out ones.

Usage: /usr/bin/python3 bench/Accuracy/threshold_rules.py <work>/multilabel-K/out-of-fold.csv <work>/multilabel-K/test.csv
(the files `bench/Accuracy --multilabel` writes: one row per image, each label's truth 0/1, then its probability; the
out-of-fold rows are the product's out-of-fold probabilities of the training images, the test rows the served graph's
on the held-out images).

Each rule maps a label's (scores, truth) to a threshold. "nested" is the macro F1 of the rule applied on 4/5 of the
out-of-fold rows and counted on the 5th (pooled over the 5 folds, stratified and in order): an estimate from the
training images alone of what the rule gives on images it never saw. "test" applies the rule to all out-of-fold rows
and scores the held-out images; "diff" is test minus the single 0.5, with a bootstrap standard error over the
held-out images. bestF1 replays ThresholdSelection.Choose (ties to the lower threshold, floored to 0.001).
"""
import math
import sys

import numpy as np


def load(path):
    a = np.loadtxt(path, delimiter=',', ndmin=2)
    n = a.shape[1] // 2
    return a[:, :n].astype(bool), a[:, n:]


def best_f1(s, y):
    positives = y.sum()
    if positives == 0 or len(s) == 0:
        return 0.5
    order = np.argsort(-s, kind='stable')
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    best = None
    for i in range(len(s)):
        if i + 1 < len(s) and s[i + 1] == s[i]:
            continue
        p, r = tp[i] / (i + 1), tp[i] / positives
        f = 0 if tp[i] == 0 else 2 * p * r / (p + r)
        if best is None or f >= best[0]:
            best = (f, math.floor(s[i] * 1000) / 1000)
    return best[1]


def counts(s, y, t):
    a = s >= t
    return np.array([(a & y).sum(), (a & ~y).sum(), (~a & y).sum()])


def f1(c):
    return 0 if c[0] == 0 else 2 * c[0] / (2 * c[0] + c[1] + c[2])


def folds(y, k):
    f = np.zeros(len(y), int)
    f[y] = np.arange(y.sum()) % k
    f[~y] = np.arange((~y).sum()) % k
    return f


def nested(rule, s, y, k=5):
    f, c = folds(y, k), np.zeros(3)
    for j in range(k):
        rest = f != j
        c += counts(s[~rest], y[~rest], rule(s[rest], y[rest]))
    return f1(c)


def shrink(k):
    return lambda s, y: math.floor((y.sum() * best_f1(s, y) + k * 0.5) / (y.sum() + k) * 1000) / 1000


def floor(n):
    return lambda s, y: best_f1(s, y) if y.sum() >= n else 0.5


def smoothed(w):
    def rule(s, y):
        grid = np.round(np.arange(0.01, 1.0, 0.01), 2)
        f = np.array([f1(counts(s, y, t)) for t in grid])
        return grid[np.argmax([f[np.abs(grid - t) <= w + 1e-9].mean() for t in grid])]
    return rule


def validated(s, y):
    # best F1 only when choosing it, cross-validated on these rows, beats 0.5 on them
    return best_f1(s, y) if nested(best_f1, s, y) > f1(counts(s, y, 0.5)) else 0.5


RULES = {
    '0.5': lambda s, y: 0.5, 'bestF1': best_f1, 'floor30': floor(30),
    'shrink5': shrink(5), 'shrink10 (product)': shrink(10), 'shrink20': shrink(20), 'shrink30': shrink(30),
    'smoothed.05': smoothed(0.05), 'validated': validated,
}


def macro(y, s, thresholds):
    return np.mean([f1(counts(s[:, l], y[:, l], t)) for l, t in enumerate(thresholds)])


def main():
    yo, so = load(sys.argv[1])
    yt, st = load(sys.argv[2])
    labels = yo.shape[1]
    print('positives, training:', yo.sum(0).tolist(), ' held out:', yt.sum(0).tolist())
    print(f"{'rule':20} {'nested':>7} {'test':>6} {'diff':>6} {'SE':>5}  thresholds")
    rng = np.random.default_rng(0)
    samples = [rng.integers(0, len(yt), len(yt)) for _ in range(500)]
    half = [0.5] * labels
    for name, rule in RULES.items():
        n = np.mean([nested(rule, so[:, l], yo[:, l]) for l in range(labels)])
        t = [rule(so[:, l], yo[:, l]) for l in range(labels)]
        test = macro(yt, st, t)
        se = np.std([macro(yt[i], st[i], t) - macro(yt[i], st[i], half) for i in samples])
        diff = test - macro(yt, st, half)
        print(f"{name:20} {n * 100:7.1f} {test * 100:6.1f} {diff * 100:+6.1f} {se * 100:5.1f}  {' '.join(f'{x:.3f}' for x in t)}")


if __name__ == '__main__':
    main()
