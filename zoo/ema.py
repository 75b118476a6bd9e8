"""Exponential moving average of model weights (the paper evaluates and releases
the EMA weights, decay 0.9999)."""

import tensorflow as tf


def ema_decay(decay, num_updates, warmup):
    """Returns the decay used for update number `num_updates` (0-based).

    Without warm-up it is `decay`. With warm-up it is
    min(decay, (1 + t) / (10 + t)), the num_updates rule of
    tf.train.ExponentialMovingAverage, so that short runs (a few hundred steps,
    where 0.9999 would keep the initial weights) still average recent weights.
    """
    if not warmup:
        return tf.constant(decay, tf.float32)
    t = tf.cast(num_updates, tf.float32)
    return tf.minimum(tf.constant(decay, tf.float32), (1.0 + t) / (10.0 + t))


class ExponentialMovingAverage(tf.Module):
    """Shadow copies s of float variables v, updated as s <- d s + (1 - d) v.

    Created inside a strategy scope the shadows are mirrored; `update` may be
    called in replica context (every replica holds the same weights, so the
    first replica's value is kept) or cross-replica context.

    Args:
      variables: the variables to average (non-float ones are skipped).
      decay: the decay d (paper: 0.9999).
      warmup: use min(decay, (1 + t) / (10 + t)) at update t (see `ema_decay`).
    """

    def __init__(self, variables, decay=0.9999, warmup=True):
        super().__init__(name="ema")
        self.decay = decay
        self.warmup = warmup
        variables = [v for v in variables if tf.as_dtype(v.dtype).is_floating]
        self._sources = [_value(v) for v in variables]
        self.shadows = [
            tf.Variable(
                v,
                trainable=False,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                name="ema_" + _name(v),
            )
            for v in variables
        ]
        self.num_updates = tf.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            name="ema_num_updates",
        )

    def update(self):
        """Moves every shadow towards its variable; returns the decay used."""
        decay = ema_decay(self.decay, self.num_updates, self.warmup)
        for shadow, source in zip(self.shadows, self._sources):
            value = tf.cast(source, shadow.dtype)
            shadow.assign(decay * shadow + (1.0 - decay) * value)
        self.num_updates.assign_add(1)
        return decay

    def swap(self):
        """Exchanges the variables' values with their shadows (call it again to
        undo); used to evaluate and save the averaged weights."""
        for shadow, source in zip(self.shadows, self._sources):
            current = tf.identity(source)
            source.assign(shadow)
            shadow.assign(current)


def _value(variable):
    """Returns the tf value of a tf.Variable or keras.Variable."""
    return variable.value if hasattr(variable, "path") else variable


def _name(variable):
    return getattr(variable, "path", variable.name).replace("/", "_").split(":")[0]
