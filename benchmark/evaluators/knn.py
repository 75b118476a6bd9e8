"""k-nearest-neighbour classification on frozen features (cosine similarity).

The paper does not state k or the metric (REFERENCE.md); we use cosine
similarity on L2-normalised features, k chosen on the fixed stratified
validation split of the training set, then the whole training set (train +
validation) as the memory for the test predictions.
"""

import numpy as np

from benchmark import metrics
from benchmark.evaluators.base import EVALUATORS, Evaluator, Measurement


@EVALUATORS.register("knn")
class KNN(Evaluator):
    """kNN classifier with k chosen on validation.

    Args:
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
        ks=(1, 3, 5, 10, 20, 50, 100),
        weighted=False,
        val_fraction=0.2,
        val_seed=0,
        chunk_size=1024,
    ):
        if int(chunk_size) < 1:
            raise ValueError(f"kNN chunk_size must be >= 1, got {chunk_size}")
        self.ks = ks
        self.weighted = weighted
        self.val_fraction = val_fraction
        self.val_seed = val_seed
        self.chunk_size = chunk_size

    def run(self, train, test, metric="top1"):
        """Yields Measurement("accuracy", test score, {"k", "val_accuracy"})."""
        score = metrics.get_metric(metric)
        tr, val = metrics.stratified_split(
            train.labels, self.val_fraction, self.val_seed
        )
        k, val_score = self._select_k(train.subset(tr), train.subset(val), score)
        predictions = knn_predict(
            train.features,
            train.labels,
            test.features,
            k,
            self.weighted,
            self.chunk_size,
        )
        yield Measurement(
            "accuracy",
            score(test.labels, predictions),
            selected={"k": k, "val_accuracy": val_score},
        )

    def _select_k(self, memory, val, score):
        """Returns (k, validation score) of the best k; ties keep the smaller k.

        The neighbours are searched once for the largest k; every smaller k
        votes with a prefix of the same sorted neighbour list.
        """
        ks = sorted({min(int(k), len(memory)) for k in self.ks})
        classes = np.unique(memory.labels)
        sims, labels = _neighbours(
            memory.features,
            np.searchsorted(classes, memory.labels),
            val.features,
            ks[-1],
            self.chunk_size,
        )
        best_k, best_score = None, -np.inf
        for k in ks:
            votes = _vote(sims[:, :k], labels[:, :k], len(classes), self.weighted)
            value = score(val.labels, classes[votes])
            if value > best_score:
                best_k, best_score = k, value
        return best_k, best_score


def knn_predict(train_x, train_y, query_x, k, weighted=False, chunk_size=1024):
    """Returns the [Q] predicted labels of `query_x` by k-NN over (train_x, train_y).

    Cosine similarity s = <x/||x||, q/||q||>; majority vote of the k most
    similar training rows (each vote weighs s when `weighted`), ties broken
    toward the class with the larger summed similarity, then the lowest label.
    """
    classes = np.unique(train_y)
    k = min(int(k), len(train_y))
    sims, labels = _neighbours(
        train_x, np.searchsorted(classes, train_y), query_x, k, chunk_size
    )
    return classes[_vote(sims, labels, len(classes), weighted)]


def _neighbours(train_x, train_y, query_x, k, chunk_size):
    """Returns (sims [Q, k], label indices [Q, k]) of the k most similar rows.

    Sorted by decreasing similarity (ties by training index). Computed in
    blocks of `chunk_size` queries so memory is O(chunk_size * N), not O(Q * N).
    """
    memory = _normalise(train_x)
    query = _normalise(query_x).astype(memory.dtype, copy=False)
    sims, labels = [], []
    for start in range(0, len(query), chunk_size):
        block = query[start : start + chunk_size] @ memory.T
        # The k largest, without the copy a negated block would cost.
        top = np.argpartition(block, block.shape[1] - k, axis=1)[:, -k:]
        top_sims = np.take_along_axis(block, top, axis=1)
        # lexsort's last key is primary: similarity descending, then index.
        order = np.lexsort((top, -top_sims), axis=1)
        top = np.take_along_axis(top, order, axis=1)
        sims.append(np.take_along_axis(top_sims, order, axis=1))
        labels.append(train_y[top])
    return np.concatenate(sims), np.concatenate(labels)


def _vote(sims, labels, num_classes, weighted):
    """Returns [Q] winning class indices of the neighbour votes.

    Votes count 1 per neighbour (or its similarity if `weighted`); among the
    classes with the most votes the largest summed similarity wins, then
    argmax's first index, i.e. the lowest label.
    """
    rows = np.repeat(np.arange(len(labels)), labels.shape[1])
    votes = np.zeros((len(labels), num_classes))
    sim_sums = np.zeros((len(labels), num_classes))
    np.add.at(sim_sums, (rows, labels.ravel()), sims.ravel())
    weights = sims.ravel() if weighted else 1.0
    np.add.at(votes, (rows, labels.ravel()), weights)
    leaders = votes == votes.max(axis=1, keepdims=True)
    return np.argmax(np.where(leaders, sim_sums, -np.inf), axis=1)


def _normalise(x):
    """Returns x / ||x|| row-wise, in float32 or wider (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.result_type(x, np.float32))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.finfo(x.dtype).tiny)
