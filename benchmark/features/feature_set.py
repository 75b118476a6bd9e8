"""Frozen features of one dataset split, as the evaluators consume them."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """Features, integer labels and example ids of one split, row-aligned.

    Attributes:
      features: [N, d] float32 penultimate-layer features.
      labels: [N] int64 class labels.
      ids: [N] str example ids (TFDS ids or file names), for provenance.
    """

    features: np.ndarray  # [N, d] float32
    labels: np.ndarray  # [N] int64
    ids: np.ndarray  # [N] str

    def __post_init__(self):
        if np.ndim(self.features) != 2:
            raise ValueError(
                f"features must be [N, d], got shape {np.shape(self.features)}"
            )
        n = len(self.features)
        for field in ("labels", "ids"):
            value = getattr(self, field)
            if np.ndim(value) != 1 or len(value) != n:
                raise ValueError(
                    f"{field} must be [N] with N={n} like features, "
                    f"got shape {np.shape(value)}"
                )

    def subset(self, idx):
        """Returns the FeatureSet of the rows `idx` (indices or boolean mask)."""
        return FeatureSet(
            features=self.features[idx], labels=self.labels[idx], ids=self.ids[idx]
        )

    def __len__(self):
        return len(self.labels)
