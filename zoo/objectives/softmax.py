"""Softmax cross-entropy, the paper's baseline: CE(Wx + b)."""

from zoo.objectives import OBJECTIVES
from zoo.objectives.base import Objective, cross_entropy


@OBJECTIVES.register("softmax")
class Softmax(Objective):
    """Vanilla softmax cross-entropy; no hyperparameters."""

    name = "softmax"

    def per_example_loss(self, labels, logits):
        return cross_entropy(labels, logits)
