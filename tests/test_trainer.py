"""Trainer pieces: the learning-rate formula, which weights get decay, the
holdout split, and one-line errors for runs that cannot start."""

import math

import numpy as np
import pytest
import tensorflow as tf

from zoo import data as zoo_data
from zoo.configs import load_config
from zoo.models import create_classifier
from zoo.objectives import create_objective
from zoo.trainer import (
    TrainError,
    WarmupExponentialDecay,
    _is_holdout,
    decayed_variables,
    make_datasets,
    train_and_evaluate,
)


def test_learning_rate_follows_warmup_then_per_epoch_decay():
    # The paper: peak 1.6 (0.1 x 4096 / 256), 10 warm-up epochs, x0.975 per epoch.
    steps_per_epoch = 312
    schedule = WarmupExponentialDecay(1.6, 10 * steps_per_epoch, steps_per_epoch, 0.975)
    for step, expected in [
        (0, 0.0),
        (156, 1.6 * 156 / 3120),
        (3119, 1.6 * 3119 / 3120),
        (3120, 1.6),
        (3120 + 311, 1.6),
        (3120 + 312, 1.6 * 0.975),
        (3120 + 50 * 312 + 7, 1.6 * 0.975**50),
    ]:
        assert math.isclose(float(schedule(step)), expected, rel_tol=1e-5, abs_tol=1e-7)


def test_weight_decay_skips_batch_norm_parameters_and_biases():
    for name in ("softmax", "cosine_softmax"):
        model = create_classifier(
            "resnet50", create_objective(name), 5, width_multiplier=0.0625
        )
        decayed = decayed_variables(model)
        paths = [v.path for v in decayed]
        assert all(p.endswith("kernel") for p in paths)
        assert not any("_bn" in p or "gamma" in p or "beta" in p for p in paths)
        assert "logits/kernel" in paths
        # every conv (53) plus the head kernel
        assert len(decayed) == 54


def test_holdout_is_a_fixed_fraction_chosen_by_example_id():
    ids = tf.constant([f"train/x/{i:05d}.jpg" for i in range(5000)])
    held = _is_holdout({"id": ids}, 0.1).numpy()
    assert abs(held.mean() - 0.1) < 0.015
    np.testing.assert_array_equal(held, _is_holdout({"id": ids}, 0.1).numpy())


def test_holdout_and_training_sets_are_disjoint_and_cover_the_split():
    config = load_config("digits")
    dataset = zoo_data.load_dataset(config.dataset)
    _, holdout, num_train = make_datasets(config, dataset)
    num_holdout = sum(int(labels.shape[0]) for _, labels in holdout)
    assert num_train + num_holdout == dataset.num_examples("train")


def test_a_global_batch_larger_than_the_data_is_refused(tmp_path):
    config = load_config("digits").replace(max_per_class=4, global_batch_size=64)
    with pytest.raises(TrainError, match="fewer than one global batch"):
        train_and_evaluate(config, str(tmp_path / "run"), report=lambda line: None)
    assert not (tmp_path / "run").exists()
