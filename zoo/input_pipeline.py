"""The trainer's input pipeline: holdout carving, per-epoch deterministic
shuffling and augmentation, per-host sharding and padded evaluation batches.

Determinism: the order of epoch e is a shuffle seeded by (seed, e), and the
augmentation of an example in epoch e is seeded by (seed, e, hash of its id),
so it does not depend on the replica count, the host count or where a resumed
run restarts. Resuming in the middle of an epoch skips the consumed examples
before decoding-heavy augmentation.
"""

import dataclasses

import tensorflow as tf

from zoo import data as zoo_data


class InputError(ValueError):
    """A dataset that cannot feed this config; the message says the fix."""


def _is_holdout(example, fraction):
    bucket = tf.strings.to_hash_bucket_fast(example["id"], 10_000)
    return bucket < int(round(fraction * 10_000))


def _count(dataset):
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def _supports_split_slicing(dataset):
    from zoo.data.tfds_dataset import TfdsDataset

    return isinstance(dataset, TfdsDataset)


@dataclasses.dataclass
class TrainData:
    """The training and holdout examples of a run (undecorated tf.data).

    Attributes:
      train: {"image", "label", "id"} examples trained on, in a fixed order.
      holdout: the examples held out for early stopping, in a fixed order.
      num_train: len(train).
      num_holdout: len(holdout).
    """

    train: tf.data.Dataset
    holdout: tf.data.Dataset
    num_train: int
    num_holdout: int


def split_train_holdout(config, dataset):
    """Returns the TrainData of `dataset` under `config` (decoded training
    images cached in memory when `config.cache_images`).

    With `config.holdout_examples = N` the first N examples of the training
    split (in the source's fixed order; TFDS split slicing "train[:N]") are held
    out: the paper's 50,046 ImageNet images. Otherwise a fraction
    `config.holdout_fraction` is chosen by a hash of the example id.
    """
    split, cap = dataset.train_split, config.max_per_class
    if split is None:
        raise InputError(f"{dataset.name} has no training split; train on another")
    data = _split(config, dataset, split, cap)
    if config.cache_images:
        data.train = data.train.cache()
    return data


def _split(config, dataset, split, cap):
    n = config.holdout_examples
    if n and _supports_split_slicing(dataset):
        held, rest = f"{split}[:{n}]", f"{split}[{n}:]"
        train = dataset.as_dataset(rest, max_per_class=cap)
        holdout = dataset.as_dataset(held, max_per_class=cap)
        return TrainData(
            train,
            holdout,
            dataset.num_examples(rest, max_per_class=cap),
            dataset.num_examples(held, max_per_class=cap),
        )
    base = dataset.as_dataset(split, max_per_class=cap)
    total = dataset.num_examples(split, max_per_class=cap)
    if n:
        if n >= total:
            raise InputError(
                f"holdout_examples={n} leaves no training data in {dataset.name} "
                f"({total} images); lower it or use holdout_fraction"
            )
        return TrainData(base.skip(n), base.take(n), total - n, n)
    fraction = config.holdout_fraction
    train = base.filter(lambda e: tf.logical_not(_is_holdout(e, fraction)))
    holdout = base.filter(lambda e: _is_holdout(e, fraction))
    if total > 200_000:  # the hash split's expected size is exact enough
        num_holdout = int(round(total * fraction))
    else:
        num_holdout = _count(holdout.map(lambda e: e["id"])) if fraction else 0
    return TrainData(train, holdout, total - num_holdout, num_holdout)


def _epoch_seed(seed, epoch):
    """Returns the seed of `epoch`: shuffling and augmentation of an epoch
    depend on (seed, epoch) only."""
    return (seed * 1_000_003 + epoch * 7_919 + 17) % (2**31 - 1)


def _concatenate(datasets):
    """Returns the datasets one after another, as a balanced tree of
    `concatenate`: each element passes through log2(n) of them, where a chain
    (a.concatenate(b).concatenate(c)...) costs n per element; 1,000 epochs
    made a chain 20 times slower than one epoch."""
    if len(datasets) == 1:
        return datasets[0]
    half = len(datasets) // 2
    return _concatenate(datasets[:half]).concatenate(_concatenate(datasets[half:]))


def train_dataset_fn(config, data, steps_per_epoch, first_epoch=0, skip_batches=0):
    """Returns fn(input_context) -> the batched training data of epochs
    `first_epoch` .. config.epochs - 1, starting after `skip_batches` global
    batches of the first one, for strategy.distribute_datasets_from_function.

    One dataset covers every remaining epoch, so a run keeps one iterator (and
    its warmed-up pipeline) from start to end. Each epoch is exactly
    `steps_per_epoch` global batches. Each host reads its own shard; each
    replica gets consecutive per-replica batches, so replicas together see
    exactly the examples one replica would see in a global batch.
    """
    size, train = config.image_size, data.train

    def augment(example, epoch_seed):
        example_seed = tf.stack(
            [epoch_seed, tf.strings.to_hash_bucket_fast(example["id"], 2**62)]
        )
        image = zoo_data.train_preprocess(
            example["image"],
            size,
            seed=example_seed,
            area_range=config.crop_area_range,
            flip=config.random_flip,
        )
        return image, example["label"]

    def dataset_fn(context):
        per_replica = context.get_per_replica_batch_size(config.global_batch_size)
        per_host = per_replica * context.num_replicas_in_sync
        per_host //= max(context.num_input_pipelines, 1)
        per_epoch = steps_per_epoch * per_host
        source = train
        if context.num_input_pipelines > 1:
            source = source.shard(
                context.num_input_pipelines, context.input_pipeline_id
            )
        buffer = max(1, min(data.num_train, config.shuffle_buffer))

        def epoch_examples(epoch):
            seed = _epoch_seed(config.seed, epoch)
            ds = source.shuffle(buffer, seed=seed, reshuffle_each_iteration=False)
            return ds.repeat().take(per_epoch)

        # Python-built epochs (tf.data's shuffle cannot take a tensor seed);
        # each example's epoch, hence its augmentation seed, comes from its
        # position, so no extra per-element stage is needed.
        ds = _concatenate(
            [epoch_examples(e) for e in range(first_epoch, config.epochs)]
        ).skip(skip_batches * per_host)
        seeds = tf.constant(
            [_epoch_seed(config.seed, e) for e in range(first_epoch, config.epochs)],
            tf.int64,
        )
        offset = skip_batches * per_host

        def augment_at(position, example):
            return augment(example, seeds[(position + offset) // per_epoch])

        ds = ds.enumerate().map(
            augment_at, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        return ds.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    return dataset_fn


def holdout_dataset_fn(config, data):
    """Returns (fn(input_context) -> padded holdout batches, number of steps).

    The holdout is padded with label -1 examples up to a multiple of the global
    evaluation batch, so every replica gets a full batch at every step and the
    padding is excluded from the counts.
    """
    size, batch = config.image_size, config.eval_batch_size
    pad = (-data.num_holdout) % batch
    steps = (data.num_holdout + pad) // batch
    padding = tf.data.Dataset.from_tensors(
        (tf.zeros([size, size, 3], tf.float32), tf.constant(-1, tf.int64))
    ).repeat(pad)
    holdout = data.holdout.map(
        lambda e: (zoo_data.eval_preprocess(e["image"], size), e["label"]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if config.cache_images:
        holdout = holdout.cache()

    def dataset_fn(context):
        per_replica = context.get_per_replica_batch_size(batch)
        ds = holdout.concatenate(padding)
        if context.num_input_pipelines > 1:
            ds = ds.shard(context.num_input_pipelines, context.input_pipeline_id)
        return ds.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    return dataset_fn, steps
