"""The training input pipeline: one dataset for every epoch, each epoch exactly
its number of batches, a resumed pipeline equal to the rest of an
uninterrupted one, and the epochs joined in a balanced tree."""

import numpy as np
import pytest
import tensorflow as tf

from zoo import data as zoo_data
from zoo.configs import load_config
from zoo.input_pipeline import _concatenate, split_train_holdout, train_dataset_fn


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13])
def test_balanced_concatenation_keeps_the_order_of_a_chain(count):
    sizes = [(3 * i) % 5 + 1 for i in range(count)]
    parts, start = [], 0
    for size in sizes:
        parts.append(tf.data.Dataset.range(start, start + size))
        start += size
    chain = parts[0]
    for part in parts[1:]:
        chain = chain.concatenate(part)
    balanced = list(_concatenate(parts).as_numpy_iterator())
    assert balanced == list(chain.as_numpy_iterator())
    assert balanced == list(range(sum(sizes)))


def _digits(epochs):
    config = load_config("digits").replace(
        epochs=epochs, max_per_class=12, global_batch_size=8, holdout_fraction=0.0
    )
    data = split_train_holdout(config, zoo_data.load_dataset(config.dataset))
    return config, data, data.num_train // config.global_batch_size


def _batches(config, data, steps, **kwargs):
    dataset = train_dataset_fn(config, data, steps, **kwargs)(
        tf.distribute.InputContext()
    )
    return [(images.numpy(), labels.numpy()) for images, labels in dataset]


def test_every_epoch_has_its_batches_and_a_resumed_pipeline_continues_it():
    config, data, steps = _digits(epochs=6)
    full = _batches(config, data, steps)
    assert len(full) == 6 * steps
    # Each epoch sees every training example once (steps * batch of them).
    per_epoch = [
        np.concatenate([b[1] for b in full[e * steps : (e + 1) * steps]])
        for e in range(6)
    ]
    assert all(len(labels) == steps * config.global_batch_size for labels in per_epoch)
    assert not np.array_equal(full[0][0], full[steps][0])  # reshuffled, re-augmented
    # Resuming at epoch 3, batch 2 gives exactly the rest of the run.
    rest = _batches(config, data, steps, first_epoch=3, skip_batches=2)
    assert len(rest) == len(full) - (3 * steps + 2)
    for (images, labels), (want_images, want_labels) in zip(
        rest, full[3 * steps + 2 :]
    ):
        np.testing.assert_array_equal(labels, want_labels)
        np.testing.assert_array_equal(images, want_images)


def test_a_long_run_builds_one_pipeline_of_all_its_epochs():
    """300 epochs: the pipeline is built and yields each epoch's batches (a
    chain of 300 concatenations was many times slower per batch)."""
    config, data, steps = _digits(epochs=300)
    dataset = train_dataset_fn(config, data, steps)(tf.distribute.InputContext())
    assert dataset.cardinality().numpy() == 300 * steps
    first = [labels.numpy() for _, labels in dataset.take(2 * steps)]
    assert len(first) == 2 * steps
