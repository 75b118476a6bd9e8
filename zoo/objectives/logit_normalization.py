"""Logit normalisation: CE(z / (tau ||z||)) (tau = 0.04)."""

from keras import ops

from zoo.objectives import OBJECTIVES
from zoo.objectives.base import Objective, cross_entropy


@OBJECTIVES.register("logit_normalization")
class LogitNormalization(Objective):
    """Cross-entropy of L2-normalised logits divided by a temperature.

    Args:
      temperature: tau > 0, 0.04 in the paper.
    """

    name = "logit_normalization"

    def __init__(self, temperature=0.04):
        self.temperature = temperature
        self._positive(temperature=temperature)

    def hparams(self):
        return {"temperature": self.temperature}

    def _normalized(self, logits):
        logits = ops.cast(logits, "float32")
        norm = ops.sqrt(ops.sum(ops.square(logits), axis=-1, keepdims=True) + 1e-12)
        return logits / (self.temperature * norm)

    def per_example_loss(self, labels, logits):
        return cross_entropy(labels, self._normalized(logits))

    def scores(self, logits):
        return self._normalized(logits)
