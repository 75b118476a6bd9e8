"""The contract every training objective fulfils.

An objective owns everything that differs between the losses of the paper: the
head that turns penultimate features into logits (its initialisation included),
the per-example loss, extra terms on the weights, and the scores used for
prediction. The trainer only averages per-example losses over the global batch
and adds `regularization(head)`.
"""

import keras
from keras import ops


class ObjectiveError(ValueError):
    """An invalid objective hyperparameter; the message says which and why."""


def dense_head(num_classes, name="logits"):
    """Returns the paper's final layer: Dense with N(0, 0.01^2) kernel, zero bias."""
    return keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        bias_initializer="zeros",
        dtype="float32",  # logits stay float32 under mixed precision
        name=name,
    )


class Objective:
    """Base class; subclasses set `name` and override what differs.

    Subclasses keep one attribute per hyperparameter and report them in
    `hparams()`; `validate()` raises ObjectiveError for out-of-range values.
    """

    name = ""

    def hparams(self):
        """Returns the objective's hyperparameters as a JSON-serialisable dict."""
        return {}

    def make_head(self, num_classes):
        """Returns the keras layer mapping pre-logits features to logits."""
        return dense_head(num_classes)

    def per_example_loss(self, labels, logits):
        """Returns the [batch] loss for integer `labels` and float32 `logits`."""
        raise NotImplementedError(f"objective {self.name!r} defines no loss")

    def regularization(self, head):
        """Returns extra loss terms on the head's weights (a scalar), 0 by default."""
        del head
        return ops.zeros(())

    def scores(self, logits):
        """Returns the per-class scores whose argmax is the prediction."""
        return logits

    def _positive(self, **values):
        for key, value in values.items():
            if not value > 0:
                raise ObjectiveError(f"{self.name}: {key} must be > 0, got {value}")

    def _non_negative(self, **values):
        for key, value in values.items():
            if not value >= 0:
                raise ObjectiveError(f"{self.name}: {key} must be >= 0, got {value}")


def cross_entropy(labels, logits):
    """Returns CE(z) = -log softmax(z)_y per example."""
    return keras.losses.sparse_categorical_crossentropy(
        labels, ops.cast(logits, "float32"), from_logits=True
    )
