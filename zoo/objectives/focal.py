"""Focal loss (Lin et al. 2017): -(1 - p_y)^gamma log p_y, p = softmax(z)."""

import keras
from keras import ops

from zoo.objectives import OBJECTIVES
from zoo.objectives.base import Objective


@OBJECTIVES.register("focal")
class Focal(Objective):
    """Cross-entropy down-weighted on well-classified examples.

    Args:
      gamma: focusing parameter >= 0 (3 is a common default; 0 is softmax).
    """

    name = "focal"

    def __init__(self, gamma=3.0):
        self.gamma = gamma
        self._non_negative(gamma=gamma)

    def hparams(self):
        return {"gamma": self.gamma}

    def per_example_loss(self, labels, logits):
        log_probs = keras.ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        y = ops.one_hot(ops.cast(labels, "int32"), logits.shape[-1])
        log_p = ops.sum(log_probs * y, axis=-1)
        return -ops.power(1.0 - ops.exp(log_p), self.gamma) * log_p
