"""k-nearest-neighbour search and voting with cosine similarity, in blocks.

`knn_predict` is the classifier; `neighbours` and `vote` let a protocol search
once at the largest candidate k and vote with every smaller k from prefixes
of the same sorted neighbour list.
"""

import numpy as np


def knn_predict(train_x, train_y, query_x, k, weighted=False, chunk_size=1024):
    """Returns the [Q] predicted labels of `query_x` by k-NN over (train_x, train_y).

    Cosine similarity s = <x/||x||, q/||q||>; majority vote of the k most
    similar training rows (each vote weighs s when `weighted`), ties broken
    toward the class with the larger summed similarity, then the lowest label.
    """
    classes = np.unique(train_y)
    k = min(int(k), len(train_y))
    sims, labels = neighbours(
        train_x, np.searchsorted(classes, train_y), query_x, k, chunk_size
    )
    return classes[vote(sims, labels, len(classes), weighted)]


def neighbours(train_x, train_y, query_x, k, chunk_size):
    """Returns (sims [Q, k], label indices [Q, k]) of the k most similar rows.

    Sorted by decreasing similarity (ties by training index). Computed in
    blocks of `chunk_size` queries so memory is O(chunk_size * N), not O(Q * N).
    """
    memory = normalise(train_x)
    query = normalise(query_x).astype(memory.dtype, copy=False)
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


def vote(sims, labels, num_classes, weighted):
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


def normalise(x):
    """Returns x / ||x|| row-wise, in float32 or wider (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.result_type(x, np.float32))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.finfo(x.dtype).tiny)
