"""Per-label threshold rules for a multi-label model, judged on the training images alone and then on the held-out ones.

Usage: /usr/bin/python3 bench/Accuracy/threshold_rules.py <work>/multilabel-K/out-of-fold.csv <work>/multilabel-K/test.csv
(the files `bench/Accuracy --multilabel` writes: one row per image, each label's truth 0/1, then its probability; the
out-of-fold rows are the product's out-of-fold probabilities of the training images, the test rows the served graph's
on the held-out images).

Each rule maps a label's (scores, truth) to a threshold. Columns:
- "nested": the macro F1 of the rule applied on 4/5 of the out-of-fold rows and counted on the 5th (pooled over the 5
  folds, stratified and in order): an estimate from the training images alone of what the rule gives on images it never
  saw. This is the criterion rules are chosen by.
- "vs prod" and "SE": nested minus the product rule's nested, with the bootstrap standard error of that difference over
  the training rows (each row's answers kept as the nested folds gave them).
- "rep": the nested F1 averaged over 10 other stratified 5-fold partitions (shuffled): how much of "nested" is the one
  partition.
- "test": the rule applied to all out-of-fold rows, scored on the held-out images; "diff" is test minus the single 0.5,
  with a bootstrap standard error over the held-out images ("SE 0.5"); when a test-groups.csv lies beside test.csv (a
  held-out emoji drawn in several styles, `--test-styles`), that error resamples emoji, each with all its drawings.
bestF1 replays ThresholdSelection.Choose (ties to the lower threshold, floored to 0.001); "shrink10 (product)" is
MultiLabelProbe.ChooseThreshold.

The principled rules beside the product's:
- "F*/2 ...": Lipton, Elkan and Narayanaswamy (2014), "Thresholding classifiers to maximize F1": for calibrated
  probabilities the F1-optimal threshold is half the best achievable F1, F*/2. The probes' probabilities are not
  calibrated to each label's base rate (a class-weighted probe's loss counts both sides equally; temperature scaling
  rescales, it does not shift), so "platt" first maps the scores to calibrated ones by Platt scaling fitted on the same
  out-of-fold rows (a logistic regression on the score's logit, with Platt's smoothed targets), takes F*/2 there and maps
  that threshold back to the score; "raw" takes F*/2 on the scores as they are. F* is estimated as: "max" the best F1 of
  the out-of-fold curve (optimistic with few positives); "cv" the cross-validated F1 of best-F1 thresholds on those rows
  (honest, noisy); "plug-in" the best expected F1 under the calibrated probabilities; "max>plug10" max shrunk toward
  plug-in by the label's positives against 10.
- "expected F1": the threshold that maximises the plug-in expected F1, 2 sum(q >= t) / (n(q >= t) + sum(q)), with q the
  Platt-calibrated probabilities (its optimum is where q = F/2).
- "blended10": the F1 curve with each row's truth blended toward its Platt-calibrated probability (truth weighing
  p / (p + 10) for a label's p positives, as the product's shrinkage weighs its best-F1 threshold), argmax: between best
  F1 (many positives) and expected F1 (few).
- "bagged": the argmax of the F1 curve averaged over 200 bootstrap resamples of the rows (an expected-F1 curve that the
  few positives move less); "bagged median": the median of the 200 resamples' best-F1 thresholds.
- "soft F1 h": F1 from soft counts (each row counts sigmoid((logit s - logit t) / h) as answered), a curve smoothed in
  logit space, argmax.
"""
import math
import os
import sys

import numpy as np


def load(path):
    a = np.loadtxt(path, delimiter=',', ndmin=2)
    n = a.shape[1] // 2
    return a[:, :n].astype(bool), a[:, n:]


def floor3(t):
    return math.floor(t * 1000) / 1000


def logit(p):
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def sigmoid(x):
    return np.exp(-np.logaddexp(0, -x))


def curve(s, y, weights=None):
    """The F1 curve over every distinct score as a threshold: (sorted scores at the cuts, F1 at each; ...) as ThresholdSelection."""
    order = np.argsort(-s, kind='stable')
    ss, yy = s[order], y[order]
    w = np.ones((1, len(s))) if weights is None else weights[:, order]
    tp = np.cumsum(w * yy, axis=1)
    answered = np.cumsum(w, axis=1)
    positives = tp[:, -1:]
    last = np.append(ss[1:] != ss[:-1], True)
    with np.errstate(divide='ignore', invalid='ignore'):
        p, r = tp / answered, tp / positives
        f = np.where(tp > 0, 2 * p * r / (p + r), 0.0)
    return ss[last], f[:, last]


def best_f1(s, y):
    if y.sum() == 0 or len(s) == 0:
        return 0.5
    cuts, f = curve(s, y)
    f = f[0]
    i = len(f) - 1 - np.argmax(f[::-1])  # ties: the lower threshold
    return floor3(cuts[i])


def best_f1_value(s, y):
    return 0.0 if y.sum() == 0 else float(curve(s, y)[1][0].max())


def counts(s, y, t):
    a = s >= t
    return np.array([(a & y).sum(), (a & ~y).sum(), (~a & y).sum()])


def f1(c):
    return 0 if c[0] == 0 else 2 * c[0] / (2 * c[0] + c[1] + c[2])


def folds(y, k, rng=None):
    f = np.zeros(len(y), int)
    for side in (y, ~y):
        where = np.flatnonzero(side)
        if rng is not None:
            where = rng.permutation(where)
        f[where] = np.arange(len(where)) % k
    return f


def nested_answers(rule, s, y, k=5, rng=None):
    """Each row's answer when the rule chooses on the other folds' rows."""
    f, answered = folds(y, k, rng), np.zeros(len(y), bool)
    for j in range(k):
        rest = f != j
        answered[~rest] = s[~rest] >= rule(s[rest], y[rest])
    return answered


def f1_of(answered, y):
    return f1(np.array([(answered & y).sum(), (answered & ~y).sum(), (~answered & y).sum()]))


def nested(rule, s, y, k=5):
    return f1_of(nested_answers(rule, s, y, k), y)


def shrink(k):
    return lambda s, y: floor3((y.sum() * best_f1(s, y) + k * 0.5) / (y.sum() + k))


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


def platt(s, y):
    """Platt scaling on the score's logit: (a, b) with calibrated q = sigmoid(a logit(s) + b); Platt's smoothed targets keep it finite.
    Newton's method, each step halved until the cross-entropy does not rise."""
    x = logit(s)
    positives, negatives = y.sum(), (~y).sum()
    target = np.where(y, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(a, b):
        z = a * x + b
        return float((np.logaddexp(0, z) - target * z).sum())

    a, b = 1.0, 0.0
    current = loss(a, b)
    for _ in range(100):
        q = sigmoid(a * x + b)
        g = np.array([((q - target) * x).sum(), (q - target).sum()])
        h = q * (1 - q)
        hessian = np.array([[(h * x * x).sum() + 1e-9, (h * x).sum()], [(h * x).sum(), h.sum() + 1e-9]])
        step = np.linalg.solve(hessian, g)
        scale = 1.0
        while scale > 1e-6 and loss(a - scale * step[0], b - scale * step[1]) > current:
            scale /= 2
        a, b = a - scale * step[0], b - scale * step[1]
        current = loss(a, b)
        if scale * np.abs(step).max() < 1e-10:
            break
    return a, b


def expected_f1_curve(q):
    """Plug-in expected F1 at each distinct calibrated probability as a threshold: 2 sum(q >= t) / (n(q >= t) + sum(q))."""
    order = np.argsort(-q, kind='stable')
    qq = q[order]
    last = np.append(qq[1:] != qq[:-1], True)
    f = 2 * np.cumsum(qq) / (np.arange(1, len(qq) + 1) + qq.sum())
    return order[last], f[last]


def fstar_plugin(s, y):
    a, b = platt(s, y)
    return float(expected_f1_curve(sigmoid(a * logit(s) + b))[1].max())


def fstar_cv(s, y):
    return nested(best_f1, s, y)


def fstar_shrunk(k):
    return lambda s, y: (y.sum() * best_f1_value(s, y) + k * fstar_plugin(s, y)) / (y.sum() + k)


def half_fstar(estimate, calibrate):
    def rule(s, y):
        if y.sum() == 0:
            return 0.5
        target = estimate(s, y) / 2
        if not calibrate:
            return floor3(target)
        a, b = platt(s, y)
        if a <= 0 or target <= 0:
            return 0.5
        return floor3(float(sigmoid((logit(target) - b) / a)))
    return rule


def expected_f1(s, y):
    if y.sum() == 0:
        return 0.5
    a, b = platt(s, y)
    order, f = expected_f1_curve(sigmoid(a * logit(s) + b))
    return floor3(s[order[len(f) - 1 - np.argmax(f[::-1])]]) if a > 0 else 0.5


def blended(k):
    """The F1 curve with each row's truth blended toward its Platt-calibrated probability, truth weighing p / (p + k) for p positives."""
    def rule(s, y):
        if y.sum() == 0:
            return 0.5
        a, b = platt(s, y)
        if a <= 0:
            return 0.5
        weight = y.sum() / (y.sum() + k)
        soft = weight * y + (1 - weight) * sigmoid(a * logit(s) + b)
        order = np.argsort(-s, kind='stable')
        ss = s[order]
        last = np.append(ss[1:] != ss[:-1], True)
        f = (2 * np.cumsum(soft[order]) / (np.arange(1, len(s) + 1) + soft.sum()))[last]
        return floor3(ss[last][len(f) - 1 - np.argmax(f[::-1])])
    return rule


def bagged(median, samples=200):
    def rule(s, y):
        if y.sum() == 0:
            return 0.5
        rng = np.random.default_rng(1)
        weights = rng.multinomial(len(s), np.full(len(s), 1 / len(s)), size=samples).astype(float)
        cuts, f = curve(s, y, weights)
        if median:
            return floor3(float(np.median(cuts[len(cuts) - 1 - np.argmax(f[:, ::-1], axis=1)])))
        mean = f.mean(0)
        return floor3(cuts[len(mean) - 1 - np.argmax(mean[::-1])])
    return rule


def soft_f1(h):
    def rule(s, y):
        if y.sum() == 0:
            return 0.5
        x = logit(s)
        cuts = np.unique(s)
        soft = sigmoid((x[None, :] - logit(cuts)[:, None]) / h)
        tp, answered = (soft * y).sum(1), soft.sum(1)
        f = 2 * tp / (answered + y.sum())
        return floor3(cuts[len(f) - 1 - np.argmax(f[::-1])])
    return rule


PRODUCT = 'shrink10 (product)'
RULES = {
    '0.5': lambda s, y: 0.5, 'bestF1': best_f1, 'floor30': floor(30),
    'shrink5': shrink(5), PRODUCT: shrink(10), 'shrink20': shrink(20), 'shrink30': shrink(30),
    'smoothed.05': smoothed(0.05), 'validated': validated,
    'F*/2 raw, max': half_fstar(best_f1_value, False),
    'F*/2 platt, max': half_fstar(best_f1_value, True),
    'F*/2 platt, cv': half_fstar(fstar_cv, True),
    'F*/2 platt, plug-in': half_fstar(fstar_plugin, True),
    'F*/2 platt, max>plug10': half_fstar(fstar_shrunk(10), True),
    'expected F1 (platt)': expected_f1,
    'blended10': blended(10),
    'bagged': bagged(False), 'bagged median': bagged(True),
    'soft F1 h=0.5': soft_f1(0.5), 'soft F1 h=1': soft_f1(1.0),
}


def macro(y, s, thresholds):
    return np.mean([f1(counts(s[:, l], y[:, l], t)) for l, t in enumerate(thresholds)])


def macro_answers(answered, y):
    return np.mean([f1_of(answered[:, l], y[:, l]) for l in range(y.shape[1])])


def main():
    yo, so = load(sys.argv[1])
    yt, st = load(sys.argv[2])
    only = sys.argv[3].split(',') if len(sys.argv) > 3 else None
    labels = yo.shape[1]
    print('positives, training:', yo.sum(0).tolist(), ' held out:', yt.sum(0).tolist())
    print(f"{'rule':24} {'nested':>6} {'vs prod':>7} {'SE':>4} {'rep':>5} {'test':>5} {'diff':>5} {'SE 0.5':>6}  thresholds")
    rng = np.random.default_rng(0)
    groups_file = os.path.join(os.path.dirname(sys.argv[2]), 'test-groups.csv')
    if os.path.exists(groups_file):
        # Held-out emoji drawn in several styles: resample emoji (each with all its drawings), not images.
        groups = np.loadtxt(groups_file, delimiter=',', usecols=0, dtype=int, ndmin=1)
        members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
        print(f'held-out SEs resample the {len(members)} emoji of {groups_file} (every drawing of one together)')
        samples = [np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))]) for _ in range(500)]
    else:
        samples = [rng.integers(0, len(yt), len(yt)) for _ in range(500)]
    rows = [rng.integers(0, len(yo), len(yo)) for _ in range(500)]
    half = [0.5] * labels
    product = np.column_stack([nested_answers(RULES[PRODUCT], so[:, l], yo[:, l]) for l in range(labels)])
    for name, rule in RULES.items():
        if only is not None and name not in only and name != PRODUCT:
            continue
        answered = np.column_stack([nested_answers(rule, so[:, l], yo[:, l]) for l in range(labels)])
        n = macro_answers(answered, yo)
        vs = n - macro_answers(product, yo)
        vs_se = np.std([macro_answers(answered[i], yo[i]) - macro_answers(product[i], yo[i]) for i in rows])
        partitions = np.random.default_rng(2)
        rep = np.mean([np.mean([f1_of(nested_answers(rule, so[:, l], yo[:, l], rng=p), yo[:, l]) for l in range(labels)])
                       for p in [np.random.default_rng(partitions.integers(1 << 30)) for _ in range(10)]])
        t = [rule(so[:, l], yo[:, l]) for l in range(labels)]
        test = macro(yt, st, t)
        se = np.std([macro(yt[i], st[i], t) - macro(yt[i], st[i], half) for i in samples])
        diff = test - macro(yt, st, half)
        print(f"{name:24} {n * 100:6.1f} {vs * 100:+7.1f} {vs_se * 100:4.1f} {rep * 100:5.1f} {test * 100:5.1f} {diff * 100:+5.1f} {se * 100:6.1f}  "
              f"{' '.join(f'{x:.3f}' for x in t)}", flush=True)


if __name__ == '__main__':
    main()
