"""Class separation R^2 of Kornblith et al. (2021), eq. 11, cosine distance.

R^2 = 1 - d_within / d_total, with d_within the mean cosine distance between
examples of the same class (averaged per class, then over the K classes) and
d_total the mean over all pairs of classes (j, k) of the mean distance between
their examples. R^2 is 1 when classes collapse to distinct points and near 0
when class membership tells nothing about direction.
"""

import numpy as np

from benchmark.analyses.class_separation import r2_from_class_means
from benchmark.evaluators.base import (
    EVALUATORS,
    Evaluator,
    Measurement,
    check_positive,
)


@EVALUATORS.register("class_separation")
class ClassSeparation(Evaluator):
    """Class separation R^2 of one split's features (no training).

    Args:
      data: dataset spec.
      split: "test" (the dataset's test split), "train" (its training split;
        the paper uses the ImageNet training set) or a split name.
      max_per_class: use at most this many images per class.
    """

    name = "class_separation"

    def __init__(self, *, data=None, split="test", max_per_class=None):
        check_positive(max_per_class=max_per_class)
        self.data = data
        self.split = split
        self.max_per_class = max_per_class

    def run(self, context):
        """Yields Measurement("r2", R^2 of the split's features by label)."""
        dataset = context.dataset(self.data)
        split = {"test": dataset.test_split, "train": dataset.train_split}.get(
            self.split, self.split
        )
        if not split:
            raise ValueError(f"{dataset.name} has no {self.split} split")
        features = context.features(dataset, split, max_per_class=self.max_per_class)
        yield Measurement(
            "r2",
            class_separation_r2(features.features, features.labels),
            dataset=dataset.name,
            split=split,
            test_size=len(features),
        )


def class_separation_r2(features, labels):
    """Returns R^2 = 1 - d_within / d_total (paper eq. 11, cosine distance).

    Exact O(N d) form: with u_i = x_i / ||x_i|| and mu_k the mean of u over
    class k, 1 - cos averages to 1 - <mu_j, mu_k> over the pairs of classes j, k,
    so d_within = 1 - (1/K) sum_k ||mu_k||^2 and
    d_total = 1 - ||(1/K) sum_k mu_k||^2.
    """
    x = np.asarray(features, dtype=np.float64)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)
    classes, index = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("class separation R^2 needs at least 2 classes")
    counts = np.bincount(index, minlength=len(classes))
    sums = np.zeros((len(classes), x.shape[1]))
    np.add.at(sums, index, unit)
    return r2_from_class_means(sums / counts[:, None])
