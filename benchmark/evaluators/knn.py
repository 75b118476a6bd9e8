"""k-nearest-neighbour classification on frozen features (cosine similarity).

The paper does not state k or the metric; we use cosine similarity on
L2-normalised features, k chosen on the fixed stratified validation split of
the training set (ties keep the smaller k; `selected` records how many
tied), then the whole training set (train + validation) as the memory for
the test predictions. The search and vote are `benchmark.stats.neighbours`'.
"""

import numpy as np

from benchmark.evaluators.base import (
    EVALUATORS,
    FeatureEvaluator,
    Measurement,
    check_positive,
    per_example,
)
from benchmark.stats import metrics
from benchmark.stats.neighbours import knn_predict, neighbours, vote


@EVALUATORS.register("knn")
class KNN(FeatureEvaluator):
    """kNN classifier with k chosen on validation.

    Args:
      data: dataset spec (train and test splits).
      max_per_class: use at most this many images per class and split.
      ks: candidate numbers of neighbours (capped at the memory size).
      weighted: if True each neighbour votes with its cosine similarity.
      val_fraction: fraction of each training class held out for selection.
      val_seed: seed of the fixed validation split.
      chunk_size: test rows per similarity block (bounds memory).
    """

    name = "knn"

    def __init__(
        self,
        *,
        data=None,
        max_per_class=None,
        ks=(1, 3, 5, 10, 20, 50, 100),
        weighted=False,
        val_fraction=0.2,
        val_seed=0,
        chunk_size=1024,
    ):
        check_positive(max_per_class=max_per_class, chunk_size=chunk_size)
        if not ks:
            raise ValueError("kNN needs at least one candidate k")
        check_positive(**{f"k={k}": k for k in ks})
        self.data = data
        self.max_per_class = max_per_class
        self.ks = tuple(ks)
        self.weighted = weighted
        self.val_fraction = val_fraction
        self.val_seed = val_seed
        self.chunk_size = chunk_size

    def evaluate(self, train, test, metric="top1"):
        """Yields Measurement("accuracy", test score, {"k", "val_accuracy",
        "ties", "tied_k_range"})."""
        score = metrics.get_metric(metric)
        tr, val = metrics.stratified_split(
            train.labels, self.val_fraction, self.val_seed
        )
        selected = self._select_k(train.subset(tr), train.subset(val), score)
        predictions = knn_predict(
            train.features,
            train.labels,
            test.features,
            selected["k"],
            self.weighted,
            self.chunk_size,
        )
        yield Measurement(
            "accuracy",
            score(test.labels, predictions),
            selected=selected,
            predictions=per_example(test.ids, predictions, test.labels),
        )

    def _select_k(self, memory, val, score):
        """Returns {"k", "val_accuracy", "ties", "tied_k_range"} of the best k;
        ties keep the smaller k.

        The neighbours are searched once for the largest k; every smaller k
        votes with a prefix of the same sorted neighbour list.
        """
        ks = sorted({min(int(k), len(memory)) for k in self.ks})
        classes = np.unique(memory.labels)
        sims, labels = neighbours(
            memory.features,
            np.searchsorted(classes, memory.labels),
            val.features,
            ks[-1],
            self.chunk_size,
        )
        scores = []
        for k in ks:
            votes = vote(sims[:, :k], labels[:, :k], len(classes), self.weighted)
            scores.append((k, score(val.labels, classes[votes])))
        best = max(value for _, value in scores)
        tied = [k for k, value in scores if value == best]
        return {
            "k": tied[0],
            "val_accuracy": float(best),
            "ties": len(tied),
            "tied_k_range": [tied[0], tied[-1]],
        }
