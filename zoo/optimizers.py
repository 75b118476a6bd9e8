"""SGD with (Nesterov) momentum as one fused kernel per variable.

Keras's SGD builds its update from about eight elementwise ops per variable
(casts, two multiplies, a subtract and an assign, twice with Nesterov). On
a CPU, where the graph executor pays a fixed cost per op, that is a large
share of a small network's step. `FusedSGD` computes the same update,

    m <- momentum * m - lr * g
    w <- w + momentum * m - lr * g     (Nesterov)
    w <- w + m                         (otherwise)

with TensorFlow's ResourceApplyKerasMomentum kernel (one op per variable,
CPU, GPU and XLA), so its slots, checkpoints and `get_config` are Keras
SGD's. It is a keras.optimizers.SGD: LossScaleOptimizer wraps it and
strategies update it as usual. Momentum 0 falls back to Keras's update.
"""

import keras
import tensorflow as tf


def _handle(variable):
    """Returns the resource handle of a keras or tf variable (the current
    replica's component inside a distribution strategy's update)."""
    value = variable.value if isinstance(variable, keras.Variable) else variable
    return value.handle


class FusedSGD(keras.optimizers.SGD):
    """keras.optimizers.SGD whose momentum update is one fused kernel."""

    def update_step(self, gradient, variable, learning_rate):
        if self.momentum == 0:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        m = self.momentums[self._get_variable_index(variable)]
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=_handle(variable),
            accum=_handle(m),
            lr=tf.cast(learning_rate, dtype),
            grad=tf.cast(gradient, dtype),
            momentum=tf.constant(self.momentum, dtype),
            use_locking=False,
            use_nesterov=bool(self.nesterov),
        )
