"""Class separation R^2 at every layer (the paper's eq. 11, cosine distance),
streamed: with u = x / ||x|| and mu_k the mean of u over class k,

  R^2 = 1 - (1 - (1/K) sum_k ||mu_k||^2) / (1 - ||(1/K) sum_k mu_k||^2),

the exact O(N d) form of 1 - d_within / d_total (the class_separation
evaluator uses the same r2_from_class_means). Only per-class sums of the unit
vectors and counts are kept, so any split size fits. Layers are the
spatially averaged endpoints and the feature vector.
"""

import numpy as np

from benchmark.analyses import ANALYSES
from benchmark.analyses.base import Analysis, AnalysisError, AnalysisResult, as_float64


def r2_from_class_means(means):
    """Returns R^2 from the [K, d] class means of L2-normalised features:
    1 - (1 - mean_k ||mu_k||^2) / (1 - ||mean_k mu_k||^2)."""
    means = np.asarray(means, dtype=np.float64)
    d_within = 1.0 - np.mean(np.sum(means**2, axis=1))
    d_total = 1.0 - np.sum(np.mean(means, axis=0) ** 2)
    return float(1.0 - d_within / d_total)


class ClassSums:
    """Streamed per-class sums (and optionally second moments) of vectors."""

    def __init__(self):
        self.sums = {}
        self.counts = {}

    def add(self, values, labels):
        for label in np.unique(labels):
            rows = values[labels == label]
            if label in self.sums:
                self.sums[label] += rows.sum(axis=0)
                self.counts[label] += len(rows)
            else:
                self.sums[label] = rows.sum(axis=0)
                self.counts[label] = len(rows)

    def means(self):
        """Returns (class labels, [K, d] class means)."""
        labels = sorted(self.sums)
        return labels, np.stack([self.sums[k] / self.counts[k] for k in labels])


@ANALYSES.register("class_separation")
class LayerClassSeparation(Analysis):
    """R^2 of eq. 11 at every layer (module docstring)."""

    name = "class_separation"
    needs_labels = True

    def conventions(self):
        return {"distance": "cosine", "form": "exact O(N d) from class means"}

    def start(self, layers):
        super().start(layers)
        self.sums = {k: {n: ClassSums() for n in v} for k, v in self.layers.items()}

    def update(self, outputs, labels):
        for key, names in self.layers.items():
            for name in names:
                x = as_float64(outputs[key][name])
                unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)
                self.sums[key][name].add(unit, labels)

    def finish(self, heads):
        del heads
        data, scalars = {"protocol": self.protocol(), "modules": {}}, []
        for key, names in self.layers.items():
            values = {}
            for name in names:
                classes, means = self.sums[key][name].means()
                if len(classes) < 2:
                    raise AnalysisError("class_separation needs at least 2 classes")
                values[name] = r2_from_class_means(means)
            data["modules"][key] = values
            scalars += [(key, self.metric("r2", n), v, {}) for n, v in values.items()]
        return AnalysisResult(data=data, scalars=scalars)
