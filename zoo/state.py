"""Process-wide state a library call may need for its span only: seeds and
op determinism, restored when the call ends (STYLE: library code does not
change process-wide state; entry points and these context managers do)."""

import contextlib
import random

import numpy as np


@contextlib.contextmanager
def seeded(seed, deterministic=False):
    """Seeds Python's, NumPy's and TensorFlow's global generators with
    `seed` (keras.utils.set_random_seed) and, with `deterministic`, turns on
    TensorFlow's op determinism, for the `with` block; afterwards the three
    generators' states, TensorFlow's global seed and the determinism switch
    are what they were before."""
    import keras
    from tensorflow.python.eager import context
    from tensorflow.python.framework import config as tf_config

    python, numpy = random.getstate(), np.random.get_state()
    tf_seed = context.global_seed()
    was_deterministic = tf_config.is_op_determinism_enabled()
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf_config.enable_op_determinism()
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
        context.set_global_seed(tf_seed)
        if deterministic and not was_deterministic:
            tf_config.disable_op_determinism()
