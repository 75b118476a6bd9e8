"""Minibatch linear CKA with the unbiased HSIC estimator (Nguyen, Raghu and
Kornblith 2021), between every pair of layers of every pair of modules.

For a minibatch of n examples and layer outputs X (n x p), Y (n x q), with
K = X X^T and L = Y Y^T and their diagonals set to zero (K~, L~):

  HSIC_1(K, L) = [ tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2))
                   - 2/(n-2) 1^T K~ L~ 1 ] / (n (n-3))

Accumulated over minibatches i:

  CKA(X, Y) = sum_i HSIC_1(K_i, L_i)
              / sqrt(sum_i HSIC_1(K_i, K_i) * sum_i HSIC_1(L_i, L_i))

Linear CKA needs no centring of X (the estimator is invariant to it), is 1
for CKA(X, X), and is invariant to orthogonal transforms and isotropic
scaling of either side. Minibatches all have `batch_size` examples; the
remainder of each pass is dropped and counted. Layers are the module's
endpoints averaged over their spatial positions (and its feature vector).
Arithmetic is float64. The paper's setting (config `paper`): batches of
1,500 and 10 passes over the evaluation set with its training augmentation.
"""

import numpy as np

from benchmark.analyses import ANALYSES
from benchmark.analyses.base import Analysis, AnalysisError, AnalysisResult, as_float64


def unbiased_hsic(gram_k, gram_l):
    """Returns HSIC_1 of two [n, n] Gram matrices (n > 3), as in the module
    docstring."""
    n = gram_k.shape[0]
    k = gram_k.copy()
    m = gram_l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(m, 0.0)
    trace = np.sum(k * m)
    sums = k.sum() * m.sum() / ((n - 1) * (n - 2))
    cross = 2.0 / (n - 2) * (k.sum(axis=0) @ m.sum(axis=0))
    return (trace + sums - cross) / (n * (n - 3))


def hsic_matrix(grams):
    """Returns the [m, m] HSIC_1 of every pair of `grams` (m x [n, n]), in one
    matrix product over their flattened zero-diagonal forms."""
    n = grams[0].shape[0]
    flat = np.stack([g.reshape(-1) for g in grams])
    eye = np.eye(n, dtype=bool).reshape(-1)
    flat[:, eye] = 0.0
    sums = flat.sum(axis=1)
    rows = flat.reshape(len(grams), n, n).sum(axis=1)
    trace = flat @ flat.T
    return (
        trace
        + np.outer(sums, sums) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * rows @ rows.T
    ) / (n * (n - 3))


def cka_from_hsic(hsic):
    """Returns the CKA matrix of an accumulated HSIC matrix."""
    diagonal = np.sqrt(np.clip(np.diag(hsic), 1e-300, None))
    return hsic / np.outer(diagonal, diagonal)


@ANALYSES.register("cka")
class MinibatchCKA(Analysis):
    """Minibatch linear CKA (module docstring).

    Args:
      batch_size: examples per minibatch (the paper: 1,500).
      passes: passes over the split (the paper: 10).
      augment: use the training augmentation (random crop, flip) on every
        pass, as the paper does; else the evaluation crop.
    """

    name = "cka"
    pairwise = True

    def __init__(self, batch_size=256, passes=1, augment=False):
        self._positive_int(batch_size=batch_size, passes=passes)
        if batch_size < 4:
            raise AnalysisError(f"cka: batch_size must be at least 4, got {batch_size}")
        self.batch_size = batch_size
        self.passes = passes
        self.augment = bool(augment)

    def settings(self):
        return {
            "batch_size": self.batch_size,
            "passes": self.passes,
            "augment": self.augment,
        }

    def conventions(self):
        return {
            "estimator": "unbiased HSIC (Song et al. 2012), summed over minibatches",
            "kernel": "linear",
            "layers": "endpoints averaged over spatial positions",
            "dtype": "float64",
        }

    def start(self, layers):
        super().start(layers)
        self.columns = [
            (key, name) for key, names in self.layers.items() for name in names
        ]
        self.hsic = np.zeros((len(self.columns), len(self.columns)))
        self.buffer = []
        self.buffered = 0
        self.minibatches = 0
        self.dropped = 0

    def update(self, outputs, labels):
        del labels
        self.buffer.append(
            [as_float64(outputs[key][name]) for key, name in self.columns]
        )
        self.buffered += len(self.buffer[-1][0])
        while self.buffered >= self.batch_size:
            self._minibatch()

    def _minibatch(self):
        stacked = [np.concatenate(parts) for parts in zip(*self.buffer)]
        batch = [x[: self.batch_size] for x in stacked]
        rest = [x[self.batch_size :] for x in stacked]
        self.hsic += hsic_matrix([x @ x.T for x in batch])
        self.minibatches += 1
        self.buffer = [rest] if len(rest[0]) else []
        self.buffered = len(rest[0])

    def end_pass(self):
        """Drops what is left of a pass (fewer than batch_size examples)."""
        self.dropped += self.buffered
        self.buffer, self.buffered = [], 0

    def finish(self, heads):
        del heads
        self.end_pass()
        if not self.minibatches:
            raise AnalysisError(
                f"cka: no complete minibatch of {self.batch_size} examples; lower "
                "--set=cka.batch_size or use more examples"
            )
        cka = cka_from_hsic(self.hsic)
        index = {column: i for i, column in enumerate(self.columns)}
        pairs, scalars = [], []
        keys = list(self.layers)
        for a in keys:
            for b in keys:
                rows = [index[(a, n)] for n in self.layers[a]]
                cols = [index[(b, n)] for n in self.layers[b]]
                matrix = cka[np.ix_(rows, cols)]
                shared = [n for n in self.layers[a] if n in self.layers[b]]
                diagonal = {n: float(cka[index[(a, n)], index[(b, n)]]) for n in shared}
                pairs.append(
                    {
                        "a": a,
                        "b": b,
                        "layers_a": self.layers[a],
                        "layers_b": self.layers[b],
                        "matrix": matrix.tolist(),
                        "same_layer": diagonal,
                    }
                )
                if a != b:
                    scalars += [
                        (a, self.metric("cka", n), v, {"reference": b})
                        for n, v in diagonal.items()
                    ]
        data = {
            "protocol": self.protocol(),
            "minibatches": self.minibatches,
            "dropped_examples": self.dropped,
            "pairs": pairs,
            "summary": same_layer_summary(pairs),
        }
        return AnalysisResult(data=data, scalars=scalars)


def same_layer_summary(pairs):
    """Returns {layer: mean same-layer CKA} over the pairs of distinct modules."""
    values = {}
    for pair in pairs:
        if pair["a"] < pair["b"]:
            for layer, value in pair["same_layer"].items():
                values.setdefault(layer, []).append(value)
    return {layer: float(np.mean(v)) for layer, v in values.items()}
