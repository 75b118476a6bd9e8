"""Few-shot linear transfer: closed-form regularised least squares on k
examples per class (big_vision's `fewshot_lsr` protocol), on frozen features.

For each k in `shots` and each of `draws` seeded draws (draw d uses seed
`seed + d`): k training examples per class are drawn, and `val_per_class`
more per class from the rest of the training split to choose the
regulariser. Features are L2-normalised; targets are one-hot codes in
{-1, +1}; with the drawn examples' means x̄, ȳ removed (the intercept),

    W(λ) = (X_cᵀ X_c + λ I)⁻¹ X_cᵀ Y_c = X_cᵀ (X_c X_cᵀ + λ I)⁻¹ Y_c,
    b(λ) = ȳ - x̄ W(λ),        prediction(x) = argmax_c (x W(λ) + b(λ)),

which is scikit-learn's RidgeClassifier(alpha=λ) (tests/test_few_shot.py).
One eigendecomposition per draw serves every λ: of the n x n Gram matrix
when n = kC <= d (the dual form), else of the d x d covariance. λ is chosen
from `l2s` by accuracy on the validation examples (ties keep the larger
λ); the test split is scored once, with that λ, and never seen before.

Each k gives two rows: `{k}shot_accuracy`, the mean over draws, and
`{k}shot_accuracy_se`, its standard error (sample std / sqrt(draws); 0 for
one draw). The features are the shared extraction's: a run that also has
the linear probe reads them from the same cache entries.
"""

import numpy as np

from benchmark.evaluators.base import (
    EVALUATORS,
    FeatureEvaluator,
    Measurement,
    check_positive,
)
from benchmark.stats import metrics

DEFAULT_SHOTS = (1, 5, 10, 25)
# big_vision's fewshot_lsr grid: 2^-10 .. 2^19.
DEFAULT_L2S = tuple(float(2.0**i) for i in range(-10, 20))


@EVALUATORS.register("few_shot")
class FewShot(FeatureEvaluator):
    """k-shot regularised least squares on L2-normalised features.

    Args:
      data: dataset spec (train and test splits).
      max_per_class: use at most this many images per class and split.
      shots: the numbers of training examples per class, k.
      draws: seeded draws of the k examples per class, for each k.
      val_per_class: held-out training examples per class that choose λ.
      l2s: candidate regularisers λ.
      seed: seed of draw 0 (draw d uses seed + d).
    """

    name = "few_shot"

    def __init__(
        self,
        *,
        data=None,
        max_per_class=None,
        shots=DEFAULT_SHOTS,
        draws=5,
        val_per_class=5,
        l2s=DEFAULT_L2S,
        seed=0,
    ):
        check_positive(max_per_class=max_per_class, draws=draws)
        check_positive(val_per_class=val_per_class)
        if not shots:
            raise ValueError("few_shot needs at least one number of shots")
        check_positive(**{f"shots={k}": k for k in shots})
        if not l2s or any(not float(v) > 0 for v in l2s):
            raise ValueError(f"few_shot l2s must be positive numbers, got {l2s!r}")
        self.data = data
        self.max_per_class = max_per_class
        self.shots = tuple(int(k) for k in shots)
        self.draws = draws
        self.val_per_class = val_per_class
        self.l2s = tuple(float(v) for v in l2s)
        self.seed = seed

    def evaluate(self, train, test, metric="top1"):
        """Yields, per k, Measurements "{k}shot_accuracy" (mean over draws,
        selected {"l2": λ per draw, "val_accuracy": per draw}) and
        "{k}shot_accuracy_se"."""
        score = metrics.get_metric(metric)
        classes = np.unique(train.labels)
        if len(classes) < 2:
            raise ValueError("few_shot needs at least 2 classes in train")
        x_train = normalise(train.features)
        x_test = normalise(test.features)
        for k in self.shots:
            accuracies, chosen, val_scores = [], [], []
            for draw in range(self.draws):
                shot, val = draw_examples(
                    train.labels, classes, k, self.val_per_class, self.seed + draw
                )
                solver = RidgeSolver(x_train[shot], train.labels[shot], classes)
                l2, val_score = self._select(
                    solver, x_train[val], train.labels[val], score
                )
                predictions = solver.predict(x_test, l2)
                accuracies.append(score(test.labels, predictions))
                chosen.append(l2)
                val_scores.append(val_score)
            mean = float(np.mean(accuracies))
            se = (
                float(np.std(accuracies, ddof=1) / np.sqrt(len(accuracies)))
                if len(accuracies) > 1
                else 0.0
            )
            selected = {"l2": chosen, "val_accuracy": val_scores, "draws": self.draws}
            sizes = dict(train_size=k * len(classes), test_size=len(test))
            yield Measurement(f"{k}shot_accuracy", mean, selected=selected, **sizes)
            yield Measurement(f"{k}shot_accuracy_se", se, **sizes)

    def _select(self, solver, x_val, y_val, score):
        """Returns (λ, validation score): the best of `l2s`, ties keeping
        the larger λ."""
        best = None
        for l2 in sorted(self.l2s, reverse=True):
            value = score(y_val, solver.predict(x_val, l2))
            if best is None or value > best[1]:
                best = (l2, float(value))
        return best


def normalise(features):
    """Returns float64 features scaled to unit L2 norm (zero rows stay 0)."""
    x = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def draw_examples(labels, classes, k, val_per_class, seed):
    """Returns (shot indices, validation indices): k examples per class and
    up to `val_per_class` others per class, drawn with RandomState(seed) in
    sorted class order. Raises ValueError when a class has fewer than k + 1
    examples (none left to choose λ)."""
    rng = np.random.RandomState(seed)
    shot, val = [], []
    for c in classes:
        members = np.flatnonzero(labels == c)
        if len(members) < k + 1:
            raise ValueError(
                f"few_shot: class {c} has {len(members)} training examples, fewer "
                f"than {k} shots plus one to choose the regulariser; lower --set="
                "few_shot.shots or raise max_per_class"
            )
        order = rng.permutation(members)
        shot.append(order[:k])
        val.append(order[k : k + val_per_class])
    return np.sort(np.concatenate(shot)), np.sort(np.concatenate(val))


class RidgeSolver:
    """Closed-form ridge regression onto {-1, +1} one-hot codes with an
    intercept, for any λ from one eigendecomposition (module docstring)."""

    def __init__(self, x, labels, classes):
        self.classes = classes
        self.x_mean = x.mean(axis=0)
        targets = np.where(labels[:, None] == classes[None, :], 1.0, -1.0)
        self.y_mean = targets.mean(axis=0)
        xc, yc = x - self.x_mean, targets - self.y_mean
        self.dual = len(x) <= x.shape[1]
        if self.dual:  # n x n: W = X_cᵀ U diag(1 / (s + λ)) Uᵀ Y_c
            s, u = np.linalg.eigh(xc @ xc.T)
            self.xc, self.s, self.projected = xc, s, u.T @ yc
            self.u = u
        else:  # d x d: W = V diag(1 / (e + λ)) Vᵀ X_cᵀ Y_c
            s, v = np.linalg.eigh(xc.T @ xc)
            self.s, self.v, self.projected = s, v, v.T @ (xc.T @ yc)

    def weights(self, l2):
        """Returns (W, b) for regulariser λ = `l2`."""
        scaled = self.projected / (np.maximum(self.s, 0.0) + l2)[:, None]
        if self.dual:
            w = self.xc.T @ (self.u @ scaled)
        else:
            w = self.v @ scaled
        return w, self.y_mean - self.x_mean @ w

    def decision(self, x, l2):
        """Returns the [n, classes] scores x W + b."""
        w, b = self.weights(l2)
        return x @ w + b

    def predict(self, x, l2):
        """Returns the predicted labels of rows `x`."""
        return self.classes[np.argmax(self.decision(x, l2), axis=1)]
