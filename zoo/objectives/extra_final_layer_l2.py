"""Softmax with extra L2 on the final layer: CE(z) + (lambda / 2) ||W||_F^2, on
top of the global weight decay (lambda = 8e-4)."""

from keras import ops

from zoo.objectives import OBJECTIVES
from zoo.objectives.base import Objective, cross_entropy


@OBJECTIVES.register("extra_final_layer_l2")
class ExtraFinalLayerL2(Objective):
    """Cross-entropy plus an L2 penalty on the final layer's kernel.

    Args:
      l2: lambda >= 0, 8e-4 in the paper.
    """

    name = "extra_final_layer_l2"

    def __init__(self, l2=8e-4):
        self.l2 = l2
        self._non_negative(l2=l2)

    def hparams(self):
        return {"l2": self.l2}

    def per_example_loss(self, labels, logits):
        return cross_entropy(labels, logits)

    def regularization(self, head):
        return 0.5 * self.l2 * ops.sum(ops.square(head.kernel))
