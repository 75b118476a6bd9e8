"""A custom training loop for the zoo: the paper's recipe on any tf.distribute
strategy (the default strategy for a single device).

The loss is the objective's per-example loss summed over the replica's examples
and divided by the *global* batch size, plus weight decay and the objective's
extra terms divided by the number of replicas, so the summed gradient equals
the single-device gradient whatever the replica count.
"""

import dataclasses
import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from zoo import data as zoo_data
from zoo.models import create_classifier
from zoo.objectives import create_objective
from zoo.provenance import code_version

CHECKPOINT_NAME = "model.weights.h5"
INFO_NAME = "train_info.json"


class TrainError(ValueError):
    """A run that cannot start; the message says why and what to change."""


@dataclasses.dataclass
class TrainResult:
    """What a run produced: the workdir, its info dict and the trained model."""

    workdir: str
    info: dict
    model: keras.Model


class WarmupExponentialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = peak * step / warmup_steps during warm-up, then
    peak * decay ** floor((step - warmup_steps) / steps_per_epoch).

    Args:
      peak: the learning rate reached at the end of warm-up.
      warmup_steps: length of the linear warm-up in steps.
      steps_per_epoch: steps between two decays.
      decay: multiplicative decay per epoch.
    """

    def __init__(self, peak, warmup_steps, steps_per_epoch, decay):
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.steps_per_epoch = steps_per_epoch
        self.decay = decay

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = self.peak * step / max(self.warmup_steps, 1)
        epochs_after = tf.floor((step - self.warmup_steps) / self.steps_per_epoch)
        decayed = self.peak * tf.pow(self.decay, tf.maximum(epochs_after, 0.0))
        return tf.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "decay": self.decay,
        }


def decayed_variables(model):
    """Returns the variables that get weight decay: conv and dense kernels, never
    BN parameters or biases."""
    return [v for v in model.trainable_variables if v.path.endswith("kernel")]


def _is_holdout(example, fraction):
    bucket = tf.strings.to_hash_bucket_fast(example["id"], 10_000)
    return bucket < int(round(fraction * 10_000))


def _count_train(dataset, config, train):
    total = dataset.num_examples(dataset.train_split)
    if total > 100_000:  # large sets: the hash split's expected size is exact enough
        return int(round(total * (1 - config.holdout_fraction)))
    return int(train.reduce(0, lambda n, _: n + 1))


def make_datasets(config, dataset):
    """Returns (train, holdout) tf.data pipelines and the train example count.

    The holdout is carved from the training split by a hash of the example id,
    so it is the same for every run, seed and replica count.
    """
    base = dataset.as_dataset(dataset.train_split, max_per_class=config.max_per_class)
    fraction = config.holdout_fraction
    train = base.filter(lambda e: tf.logical_not(_is_holdout(e, fraction)))
    holdout = base.filter(lambda e: _is_holdout(e, fraction))
    num_train = _count_train(dataset, config, train)
    if num_train < config.global_batch_size:
        raise TrainError(
            f"{dataset.name}: {num_train} training images is fewer than one global "
            f"batch of {config.global_batch_size}; lower --global_batch_size"
        )
    size = config.image_size

    def augment(example, seed):
        image = zoo_data.train_preprocess(
            example["image"],
            size,
            seed=seed,
            area_range=config.crop_area_range,
            flip=config.random_flip,
        )
        return image, example["label"]

    if config.cache_images:
        train = train.cache()
    seeds = tf.data.Dataset.random(seed=config.seed).batch(2)
    train = (
        tf.data.Dataset.zip(
            train.shuffle(
                min(num_train, 50_000), seed=config.seed, reshuffle_each_iteration=True
            ).repeat(),
            seeds,
        )
        .map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(config.global_batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    holdout = holdout.map(
        lambda e: (zoo_data.eval_preprocess(e["image"], size), e["label"]),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).batch(256)
    if config.cache_images:
        holdout = holdout.cache()
    return train, holdout.prefetch(tf.data.AUTOTUNE), num_train


def evaluate(model, objective, dataset):
    """Returns {"top1", "top5", "count"} of `model` on batches of (image, label)."""
    correct1 = correct5 = count = 0
    for images, labels in dataset:
        scores = objective.scores(model(images, training=False)["logits"])
        top = tf.math.top_k(scores, k=min(5, scores.shape[-1])).indices.numpy()
        labels = labels.numpy()[:, None]
        correct1 += int(np.sum(top[:, :1] == labels))
        correct5 += int(np.sum(np.any(top == labels, axis=1)))
        count += len(labels)
    if count == 0:
        return {"top1": float("nan"), "top5": float("nan"), "count": 0}
    return {"top1": correct1 / count, "top5": correct5 / count, "count": count}


def validate_config(config):
    """Builds what the config names, raising on bad names before any work.

    Returns (objective, dataset).
    """
    objective = create_objective(config.objective, **config.objective_hparams)
    from zoo.models import ARCHITECTURES

    ARCHITECTURES.get(config.arch)
    dataset = zoo_data.load_dataset(config.dataset, data_dir=config.data_dir)
    if config.global_batch_size <= 0 or config.epochs <= 0:
        raise TrainError("global_batch_size and epochs must be positive")
    return objective, dataset


def build_model(config, objective, num_classes):
    """Returns the classifier the config describes (fully convolutional)."""
    keras.utils.set_random_seed(config.seed)
    return create_classifier(
        config.arch,
        objective,
        num_classes,
        width_multiplier=config.width_multiplier,
        sync_bn=config.sync_bn,
    )


def _atomic_write_text(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def train_and_evaluate(config, workdir, strategy=None, report=print):
    """Trains the config's model, evaluates it on the holdout every epoch and
    saves the weights and `train_info.json` in `workdir`.

    Returns a TrainResult. `report` receives one progress line per epoch.
    """
    objective, dataset = validate_config(config)
    strategy = strategy or tf.distribute.get_strategy()
    train_ds, holdout_ds, num_train = make_datasets(config, dataset)
    steps_per_epoch = num_train // config.global_batch_size
    with strategy.scope():
        model = build_model(config, objective, dataset.num_classes)
        schedule = WarmupExponentialDecay(
            peak=config.base_learning_rate * config.global_batch_size / 256,
            warmup_steps=int(config.warmup_epochs * steps_per_epoch),
            steps_per_epoch=steps_per_epoch,
            decay=config.lr_decay_per_epoch,
        )
        optimizer = keras.optimizers.SGD(
            learning_rate=schedule, momentum=config.momentum, nesterov=True
        )
        optimizer.build(model.trainable_variables)
    head = model.get_layer("logits")
    decayed = decayed_variables(model)
    replicas = strategy.num_replicas_in_sync

    def step_fn(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)["logits"]
            per_example = objective.per_example_loss(labels, logits)
            data_loss = tf.reduce_sum(per_example) / config.global_batch_size
            decay = (
                0.5
                * config.weight_decay
                * tf.add_n([tf.reduce_sum(tf.square(v)) for v in decayed])
            )
            extra = objective.regularization(head)
            loss = data_loss + (decay + extra) / replicas
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return data_loss * replicas

    @tf.function
    def train_epoch(iterator, steps):
        total = tf.constant(0.0)
        for _ in tf.range(steps):
            images, labels = next(iterator)
            per_replica = strategy.run(step_fn, args=(images, labels))
            total += strategy.reduce("MEAN", per_replica, axis=None)
        return total / tf.cast(steps, tf.float32)

    os.makedirs(workdir, exist_ok=True)
    iterator = iter(strategy.experimental_distribute_dataset(train_ds))
    history = []
    report(
        f"[train] {config.arch} x{config.width_multiplier} {config.objective} on "
        f"{dataset.name}: {num_train} images, {dataset.num_classes} classes, "
        f"{config.epochs} epochs x {steps_per_epoch} steps, {replicas} replica(s)"
    )
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        loss = float(train_epoch(iterator, tf.constant(steps_per_epoch)))
        seconds = time.perf_counter() - start
        holdout = evaluate(model, objective, holdout_ds)
        if not math.isfinite(loss):
            raise TrainError(f"loss became {loss} in epoch {epoch}; lower the lr")
        history.append({"epoch": epoch, "loss": loss, **holdout, "seconds": seconds})
        report(
            f"[train] epoch {epoch}/{config.epochs} loss {loss:.4f} holdout top1 "
            f"{holdout['top1']:.3f} ({holdout['count']} images) "
            f"{steps_per_epoch * config.global_batch_size / seconds:.0f} img/s"
        )
    weights_path = os.path.join(workdir, CHECKPOINT_NAME)
    model.save_weights(weights_path + ".tmp.weights.h5")
    os.replace(weights_path + ".tmp.weights.h5", weights_path)
    info = {
        "config": json.loads(config.to_json()),
        "objective_hparams": objective.hparams(),
        "num_classes": dataset.num_classes,
        "class_names": list(dataset.class_names),
        "dataset": dataset.name,
        "num_train": num_train,
        "holdout": history[-1] if history else {},
        "history": history,
        "code_version": code_version(),
    }
    _atomic_write_text(os.path.join(workdir, INFO_NAME), json.dumps(info, indent=1))
    return TrainResult(workdir=workdir, info=info, model=model)


def load_trained_model(workdir):
    """Returns (model, objective, info) rebuilt from a workdir written by
    `train_and_evaluate`; raises TrainError if it is not one."""
    info_path = os.path.join(workdir, INFO_NAME)
    weights_path = os.path.join(workdir, CHECKPOINT_NAME)
    if not (os.path.isfile(info_path) and os.path.isfile(weights_path)):
        raise TrainError(
            f"{workdir} is not a training checkpoint (no {INFO_NAME} and "
            f"{CHECKPOINT_NAME}); pass the --workdir of a finished zoo-train run"
        )
    with open(info_path) as f:
        info = json.load(f)
    from zoo.config import TrainConfig

    config = TrainConfig.from_json(json.dumps(info["config"]))
    objective = create_objective(config.objective, **config.objective_hparams)
    model = build_model(config, objective, info["num_classes"])
    try:
        model.load_weights(weights_path)
    except (ValueError, OSError) as e:
        raise TrainError(f"{weights_path} does not match its config: {e}") from None
    return model, objective, info
