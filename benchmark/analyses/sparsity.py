"""Sparsity: the fraction of non-zero activations of every layer,

  nonzero(layer) = #{activations != 0} / #{activations},

counted over every element of the raw layer output (every spatial position
and channel of every example), not its spatial average. For the feature
vector of a ResNet (the average-pooled output of the last ReLU block) an
element is zero only when its channel is zero at every position; the paper
reports 92.8% non-zero penultimate features for softmax. The value at the
feature vector is a leaderboard row (`nonzero_fraction`).
"""

import numpy as np

from benchmark.analyses import ANALYSES
from benchmark.analyses.base import Analysis, AnalysisResult


@ANALYSES.register("sparsity")
class Sparsity(Analysis):
    """Fraction of non-zero activations per layer (module docstring)."""

    name = "sparsity"
    raw = True

    def conventions(self):
        return {"counted": "every element of the raw layer output", "zero": "== 0"}

    def start(self, layers):
        super().start(layers)
        self.nonzero = {k: dict.fromkeys(v, 0) for k, v in self.layers.items()}
        self.total = {k: dict.fromkeys(v, 0) for k, v in self.layers.items()}

    def update(self, outputs, labels):
        del labels
        for key, names in self.layers.items():
            for name in names:
                value = np.asarray(outputs[key][name])
                self.nonzero[key][name] += int(np.count_nonzero(value))
                self.total[key][name] += int(value.size)

    def finish(self, heads):
        del heads
        data, scalars = {"protocol": self.protocol(), "modules": {}}, []
        for key, names in self.layers.items():
            fractions = {n: self.nonzero[key][n] / self.total[key][n] for n in names}
            data["modules"][key] = fractions
            scalars += [
                (key, self.metric("nonzero_fraction", n), v, {})
                for n, v in fractions.items()
            ]
        return AnalysisResult(data=data, scalars=scalars)
