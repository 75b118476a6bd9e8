"""What few-shot transfer costs next to the linear probe on the same frozen
features: `few_shot` (1/5/10/25 shots x 5 draws, 30 regularisers each)
against `linear_probe` (the 45-value L2 sweep, the baseline), in one process
on perf/linear_probe.py's synthetic ReLU features, plus scikit-learn's
RidgeClassifier fitted once per λ for one draw (what the closed form with
one eigendecomposition per draw replaces).

Command (about 3 minutes on 2 shared CPU cores):
  .venv/bin/python perf/few_shot.py
  .venv/bin/python perf/few_shot.py --n 2000 --n_test 500  # quick

Measured (2 CPU cores beside a running test suite, TF 2.21, scikit-learn
1.9.1; 10,000 x 2,048 train, 2,000 test, 10 classes): linear probe 36.2 s
(top-1 73.4%); few_shot 2.2 s (ratio 0.06; 1/5/10/25-shot 27.2 / 46.2 /
54.5 / 63.7%); one draw's 30 λ at 25 shots: closed form 0.05 s,
RidgeClassifier fitted per λ 3.06 s (62x).
"""

import argparse
import time

import numpy as np
from linear_probe import make_features  # perf/linear_probe.py, beside this file
from sklearn.linear_model import RidgeClassifier

from benchmark.evaluators import create_evaluator
from benchmark.evaluators.few_shot import RidgeSolver, draw_examples, normalise
from benchmark.features.feature_set import FeatureSet


def _set(x, y):
    return FeatureSet(x, y, np.array([str(i) for i in range(len(y))]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--n_test", type=int, default=2_000)
    parser.add_argument("--d", type=int, default=2_048)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    train = _set(*make_features(args.n, args.d, args.classes, seed=0))
    test = _set(*make_features(args.n_test, args.d, args.classes, seed=0))

    start = time.perf_counter()
    (probe,) = create_evaluator("linear_probe").evaluate(train, test)
    probe_s = time.perf_counter() - start
    few = create_evaluator("few_shot")
    start = time.perf_counter()
    rows = {m.metric: m.value for m in few.evaluate(train, test)}
    few_s = time.perf_counter() - start
    print(f"linear_probe (baseline): {probe_s:6.1f} s  top-1 {100 * probe.value:.1f}%")
    shots = " / ".join(f"{100 * rows[f'{k}shot_accuracy']:.1f}" for k in few.shots)
    print(
        f"few_shot:                {few_s:6.1f} s  ratio {few_s / probe_s:.2f}  "
        f"{'/'.join(map(str, few.shots))}-shot {shots}%"
    )

    k = max(few.shots)
    classes = np.unique(train.labels)
    shot, _ = draw_examples(train.labels, classes, k, 5, seed=0)
    x = normalise(train.features[shot])
    y = train.labels[shot]
    start = time.perf_counter()
    solver = RidgeSolver(x, y, classes)
    for l2 in few.l2s:
        solver.decision(x[:1], l2)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    for l2 in few.l2s:
        RidgeClassifier(alpha=l2, solver="cholesky").fit(x, y)
    theirs = time.perf_counter() - start
    print(
        f"{len(few.l2s)} λ at {k} shots: closed form {ours:.2f} s, RidgeClassifier "
        f"{theirs:.2f} s ({theirs / ours:.1f}x)"
    )


if __name__ == "__main__":
    main()
