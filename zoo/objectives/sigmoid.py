"""Sigmoid cross-entropy: sum over all K classes of binary CE between y_k and
sigmoid(z_k - log K); the shift makes the initial outputs about 1 / K."""

import math

from keras import ops

from zoo.objectives import OBJECTIVES
from zoo.objectives.base import Objective


@OBJECTIVES.register("sigmoid")
class Sigmoid(Objective):
    """Independent per-class sigmoids with the -log K shift; no hyperparameters."""

    name = "sigmoid"

    def _shifted(self, logits):
        logits = ops.cast(logits, "float32")
        return logits - math.log(logits.shape[-1])

    def per_example_loss(self, labels, logits):
        z = self._shifted(logits)
        y = ops.one_hot(ops.cast(labels, "int32"), logits.shape[-1])
        # Stable binary CE with logits: max(z, 0) - z y + log(1 + exp(-|z|)).
        bce = ops.relu(z) - z * y + ops.log1p(ops.exp(-ops.abs(z)))
        return ops.sum(bce, axis=-1)

    def scores(self, logits):
        return self._shifted(logits)
