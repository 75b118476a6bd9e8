"""Squared error (Hui & Belkin 2021 as used by Kornblith et al.):
s * (kappa (z_y - M)^2 + sum_{k != y} z_k^2) with kappa = 9, M = 60, s = 10."""

from keras import ops

from zoo.objectives import OBJECTIVES
from zoo.objectives.base import Objective


@OBJECTIVES.register("squared_error")
class SquaredError(Objective):
    """Regression of the logits onto M * onehot(y), the target weighted by kappa.

    Args:
      kappa: weight of the true-class term, 9 in the paper.
      target: M, the true-class logit target, 60 in the paper.
      scale: s, the overall loss scale, 10 in the paper.
    """

    name = "squared_error"

    def __init__(self, kappa=9.0, target=60.0, scale=10.0):
        self.kappa = kappa
        self.target = target
        self.scale = scale
        self._positive(kappa=kappa, target=target, scale=scale)

    def hparams(self):
        return {"kappa": self.kappa, "target": self.target, "scale": self.scale}

    def per_example_loss(self, labels, logits):
        z = ops.cast(logits, "float32")
        y = ops.one_hot(ops.cast(labels, "int32"), z.shape[-1])
        true_term = self.kappa * ops.square(ops.sum(z * y, axis=-1) - self.target)
        other_terms = ops.sum(ops.square(z) * (1 - y), axis=-1)
        return self.scale * (true_term + other_terms)
