"""Label smoothing (Szegedy et al. 2016) as in docs/paper.md:
(1 / (1 - a)) * -sum_k t_k log softmax(z)_k with t = (1 - a) y + a / K."""

import keras
from keras import ops

from zoo.objectives import OBJECTIVES
from zoo.objectives.base import Objective, ObjectiveError


@OBJECTIVES.register("label_smoothing")
class LabelSmoothing(Objective):
    """Cross-entropy against smoothed targets, rescaled by 1 / (1 - a).

    Args:
      alpha: smoothing a in [0, 1), 0.1 in the paper.
    """

    name = "label_smoothing"

    def __init__(self, alpha=0.1):
        self.alpha = alpha
        if not 0 <= alpha < 1:
            raise ObjectiveError(f"{self.name}: alpha must be in [0, 1), got {alpha}")

    def hparams(self):
        return {"alpha": self.alpha}

    def per_example_loss(self, labels, logits):
        num_classes = ops.shape(logits)[-1]
        onehot = ops.one_hot(ops.cast(labels, "int32"), num_classes)
        targets = (1 - self.alpha) * onehot + self.alpha / ops.cast(
            num_classes, "float32"
        )
        log_probs = keras.ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        return -ops.sum(targets * log_probs, axis=-1) / (1 - self.alpha)
