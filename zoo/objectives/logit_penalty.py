"""Logit penalty: CE(z) + (beta / 2) ||z||^2 per example (beta = 6e-4)."""

from keras import ops

from zoo.objectives import OBJECTIVES
from zoo.objectives.base import Objective, cross_entropy


@OBJECTIVES.register("logit_penalty")
class LogitPenalty(Objective):
    """Cross-entropy plus a squared-norm penalty on the logits.

    Args:
      beta: penalty weight >= 0, 6e-4 in the paper.
    """

    name = "logit_penalty"

    def __init__(self, beta=6e-4):
        self.beta = beta
        self._non_negative(beta=beta)

    def hparams(self):
        return {"beta": self.beta}

    def per_example_loss(self, labels, logits):
        logits = ops.cast(logits, "float32")
        penalty = 0.5 * self.beta * ops.sum(ops.square(logits), axis=-1)
        return cross_entropy(labels, logits) + penalty
