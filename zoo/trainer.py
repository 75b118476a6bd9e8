"""The zoo's training loop: the paper's recipe on any tf.distribute strategy.

Global-batch semantics: the loss is the objective's per-example loss summed
over a replica's examples and divided by the *global* batch size, plus weight
decay and the objective's extra terms divided by the number of replicas, so
the summed gradient (and the reported loss and metrics) do not depend on the
replica count. Weight decay (L2, 0.5 * weight_decay * sum of squared conv
and dense kernels) is added as its gradient rather than differentiated
through the tape, and the SGD update is one fused kernel per variable
(zoo/optimizers.py); batch norm trains through TensorFlow's fused kernel
(zoo.models.layers.BatchNormalization, `fused_batch_norm`) and 1x1
convolutions as one matrix product (zoo.models.layers.Conv2D,
`matmul_pointwise_conv`). The math is the paper's, with far fewer ops and
cheaper kernels per step.
Many steps run per compiled call (`steps_per_call`), which is what Keras
`fit(steps_per_execution > 1)` cannot do under multi-replica
MirroredStrategy in this Keras version.

A workdir holds:
  config.json               the run's TrainConfig;
  checkpoints/              full state (weights, optimizer, EMA, step), written
                            atomically at every epoch end and every
                            `checkpoint_every_steps`; a rerun resumes from it;
  history.json              per-epoch loss, lr, holdout top-1/top-5, images/s;
  model.weights.h5          the EMA weights of the best holdout epoch (what
                            zoo-export exports);
  train_info.json           written when training ends;
  tensorboard/              summaries.
"""

import dataclasses
import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from zoo import distribute
from zoo import input_pipeline as pipeline
from zoo.config import TrainConfig
from zoo.data import load_dataset
from zoo.ema import ExponentialMovingAverage
from zoo.files import atomic_path, write_atomic
from zoo.models import ARCHITECTURES, create_classifier
from zoo.models.layers import use_fused_batch_norm, use_matmul_pointwise_conv
from zoo.objectives import create_objective
from zoo.optimizers import FusedSGD
from zoo.provenance import code_version, device_description
from zoo.state import seeded

CHECKPOINT_NAME = "model.weights.h5"
INFO_NAME = "train_info.json"
CONFIG_NAME = "config.json"
HISTORY_NAME = "history.json"
CHECKPOINT_DIR = "checkpoints"


# Learning rates per 256 images above this diverge for every objective here.
MAX_BASE_LEARNING_RATE = 100.0
# A run stops when a step's loss exceeds this many times the first loss it saw
# (at least 1): finite but diverged, it would only waste the rest of its budget.
EXPLODE_FACTOR = 100


class TrainError(ValueError):
    """A run that cannot start or go on; the message says why and what to do."""


@dataclasses.dataclass
class TrainResult:
    """What a run produced.

    Attributes:
      workdir: the run's directory.
      info: the train_info.json dict.
      model: the model, holding the exported (best-epoch EMA) weights.
      step_losses: the mean training loss of every step run by this process.
    """

    workdir: str
    info: dict
    model: keras.Model
    step_losses: list = dataclasses.field(default_factory=list)


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


def validate_config(config):
    """Builds what the config names, raising on bad values before any work.

    Returns (objective, dataset).
    """
    objective = create_objective(config.objective, **config.objective_hparams)
    minimum = getattr(ARCHITECTURES.get(config.arch), "min_image_size", 1)
    if config.image_size < minimum:
        raise TrainError(
            f"{config.arch} needs images of at least {minimum} px and this config "
            f"trains at {config.image_size}; pass --image_size={minimum} (or "
            "more), or another architecture"
        )
    for field in ("global_batch_size", "epochs", "steps_per_call", "eval_batch_size"):
        if getattr(config, field) <= 0:
            raise TrainError(f"{field} must be positive, got {getattr(config, field)}")
    for field in ("base_learning_rate", "weight_decay", "momentum"):
        value = getattr(config, field)
        low_ok = value > 0 if field == "base_learning_rate" else value >= 0
        if not (isinstance(value, (int, float)) and math.isfinite(value) and low_ok):
            raise TrainError(
                f"{field} must be a finite number "
                f"{'> 0' if field == 'base_learning_rate' else '>= 0'}, got {value}"
            )
    if config.base_learning_rate > MAX_BASE_LEARNING_RATE:
        raise TrainError(
            f"base_learning_rate {config.base_learning_rate} is beyond "
            f"{MAX_BASE_LEARNING_RATE} per 256 images (the paper's is 0.1); such a "
            "run diverges. Pass a smaller --base_learning_rate"
        )
    if not (math.isfinite(config.width_multiplier) and config.width_multiplier > 0):
        raise TrainError(
            f"width_multiplier must be positive, got {config.width_multiplier}"
        )
    holdout = getattr(config, "holdout_examples", 0) or 0
    if holdout < 0:
        raise TrainError(f"holdout_examples must be >= 0, got {holdout}")
    if not 0.0 <= config.holdout_fraction < 1.0:
        raise TrainError("holdout_fraction must be in [0, 1)")
    if not 0.0 <= config.ema_decay < 1.0:
        raise TrainError(f"ema_decay must be in [0, 1), got {config.ema_decay}")
    distribute.resolve_precision(config.precision, "CPU")
    dataset = load_dataset(
        config.dataset, data_dir=config.data_dir, manual_dir=config.manual_dir
    )
    return objective, dataset


def check_replicas(config, replicas):
    """Raises TrainError unless both global batches split evenly over replicas."""
    for field in ("global_batch_size", "eval_batch_size"):
        value = getattr(config, field)
        if value % replicas:
            raise TrainError(
                f"{field} {value} is not divisible by the {replicas} replicas; "
                f"use a multiple of {replicas}"
            )


def build_model(config, objective, num_classes, precision="float32"):
    """Returns the classifier the config describes, its layers computing in
    `precision` (a Keras dtype policy; logits stay float32)."""
    keras.utils.set_random_seed(config.seed)  # the same weights on every resume
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(precision)
    try:
        return create_classifier(
            config.arch,
            objective,
            num_classes,
            width_multiplier=config.width_multiplier,
            sync_bn=config.sync_bn,
        )
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def _read_json(path, default):
    if not os.path.isfile(path):
        return default
    with open(path) as f:
        return json.load(f)


def _check_workdir(config, workdir):
    """Raises TrainError if `workdir` holds a run of an incompatible config."""
    stored = os.path.join(workdir, CONFIG_NAME)
    if not os.path.isfile(stored):
        return
    try:
        with open(stored) as f:
            previous = TrainConfig.from_json(f.read())
    except (ValueError, TypeError, KeyError) as error:
        raise TrainError(
            f"{stored} is unreadable ({error}); remove the workdir or pick another"
        ) from None
    changed = config.resume_differences(previous)
    if changed:
        detail = ", ".join(
            f"{k}: {getattr(previous, k)!r} -> {getattr(config, k)!r}"
            for k in changed[:3]
        )
        raise TrainError(
            f"{workdir} holds a run with another config ({detail}); resume it "
            "with the same config or use a new --workdir"
        )


class _Run:
    """The state of one training run: strategy, data, model, optimizer, EMA,
    checkpoints and the compiled step functions."""

    def __init__(self, config, workdir, strategy, report):
        self.config, self.workdir, self.report = config, workdir, report
        self.objective, self.dataset = validate_config(config)
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync
        check_replicas(config, self.replicas)
        _check_workdir(config, workdir)
        kind = distribute.device_kind(strategy)
        self.precision = distribute.resolve_precision(config.precision, kind)
        self.jit_compile = distribute.resolve_jit_compile(config.jit_compile, kind)
        if config.sync_bn and self.jit_compile and self.replicas > 1:
            self.jit_compile = False  # a cross-replica all-reduce inside the step
        self.matmul_pointwise_conv = distribute.resolve_matmul_pointwise_conv(
            config.matmul_pointwise_conv, kind
        )
        self.chief = distribute.is_chief(strategy)
        self.data = pipeline.split_train_holdout(config, self.dataset)
        self.steps_per_epoch = self.data.num_train // config.global_batch_size
        if self.steps_per_epoch < 1:
            raise TrainError(
                f"{self.dataset.name}: {self.data.num_train} training images is "
                f"fewer than one global batch of {config.global_batch_size}; "
                "lower --global_batch_size"
            )
        self.total_steps = config.epochs * self.steps_per_epoch
        self._holdout_fn, self._holdout_steps = pipeline.holdout_dataset_fn(
            config, self.data
        )
        self._build()

    def _build(self):
        config = self.config
        with self.strategy.scope():
            self.model = build_model(
                config, self.objective, self.dataset.num_classes, self.precision
            )
            # Before the steps are traced: the kernel is chosen at tracing.
            use_fused_batch_norm(self.model, config.fused_batch_norm)
            use_matmul_pointwise_conv(self.model, self.matmul_pointwise_conv)
            self.schedule = WarmupExponentialDecay(
                peak=config.base_learning_rate * config.global_batch_size / 256,
                warmup_steps=int(config.warmup_epochs * self.steps_per_epoch),
                steps_per_epoch=self.steps_per_epoch,
                decay=config.lr_decay_per_epoch,
            )
            optimizer = FusedSGD(
                learning_rate=self.schedule, momentum=config.momentum, nesterov=True
            )
            if self.precision == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            self.optimizer.build(self.model.trainable_variables)
            self.ema = ExponentialMovingAverage(
                self.model.variables, config.ema_decay, config.ema_warmup
            )
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.epoch_loss = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            ema=self.ema,
            step=self.step,
            epoch_loss=self.epoch_loss,
        )
        directory = os.path.join(self.workdir, CHECKPOINT_DIR)
        if not self.chief:  # other workers write where nobody reads
            directory = os.path.join(self.workdir, ".workers", str(os.getpid()))
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, directory, max_to_keep=self.config.keep_checkpoints
        )
        self._compile_steps()

    def _compile_steps(self):
        config, model, objective = self.config, self.model, self.objective
        head = model.get_layer("logits")
        decayed = decayed_variables(model)
        trainable = model.trainable_variables
        replicas, optimizer = self.replicas, self.optimizer

        decayed_ids = {id(v) for v in decayed}
        decay_rate = config.weight_decay / replicas  # gradients sum over replicas

        def gradients(images, labels):
            with tf.GradientTape() as tape:
                logits = model(images, training=True)["logits"]
                per_example = objective.per_example_loss(labels, logits)
                data_loss = tf.reduce_sum(per_example) / config.global_batch_size
                extra = objective.regularization(head)
                scaled = optimizer.scale_loss(data_loss + extra / replicas)
            grads = tape.gradient(scaled, trainable)
            # The L2 term 0.5 * weight_decay * sum(w^2) of the loss enters as
            # its gradient, weight_decay * w (times the loss scale): two ops
            # per variable instead of differentiating the sum through the tape.
            scale = optimizer.scale_loss(tf.constant(1.0)) * decay_rate
            return data_loss, [
                g + tf.cast(scale, g.dtype) * v.value if id(v) in decayed_ids else g
                for g, v in zip(grads, trainable)
            ]

        if self.jit_compile:
            gradients = tf.function(gradients, jit_compile=True)

        def step_fn(images, labels):
            data_loss, grads = gradients(images, labels)
            optimizer.apply_gradients(zip(grads, trainable))
            self.ema.update()
            return data_loss * replicas  # this replica's mean per-example loss

        @tf.function
        def train_steps(iterator, steps):
            losses = tf.TensorArray(tf.float32, size=steps)
            for i in tf.range(steps):
                images, labels = next(iterator)
                per_replica = self.strategy.run(step_fn, args=(images, labels))
                losses = losses.write(
                    i, self.strategy.reduce("MEAN", per_replica, axis=None)
                )
            self.step.assign_add(tf.cast(steps, tf.int64))
            return losses.stack()

        def eval_fn(images, labels):
            scores = objective.scores(model(images, training=False)["logits"])
            k = min(5, scores.shape[-1])
            top = tf.math.top_k(tf.cast(scores, tf.float32), k=k).indices
            top = tf.cast(top, tf.int64)
            valid = labels >= 0
            hit1 = tf.logical_and(valid, top[:, 0] == labels)
            hit5 = tf.logical_and(valid, tf.reduce_any(top == labels[:, None], 1))
            count = lambda x: tf.reduce_sum(tf.cast(x, tf.int64))  # noqa: E731
            return tf.stack([count(hit1), count(hit5), count(valid)])

        @tf.function
        def eval_steps(iterator, steps):
            total = tf.zeros([3], tf.int64)
            for _ in tf.range(steps):
                images, labels = next(iterator)
                per_replica = self.strategy.run(eval_fn, args=(images, labels))
                total += self.strategy.reduce("SUM", per_replica, axis=None)
            return total

        self._train_steps, self._eval_steps = train_steps, eval_steps

    def restore(self):
        """Restores the latest checkpoint if there is one; returns its step."""
        path = self.manager.latest_checkpoint
        if not path:
            return 0
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, AssertionError) as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise TrainError(
                f"checkpoint {path} is corrupt or does not match this config "
                f"({first[:160]}); delete {os.path.dirname(path)} to restart, "
                "or use a new --workdir"
            ) from None
        return int(self.step.numpy())

    def evaluate_holdout(self):
        """Returns {"top1", "top5", "count"} of the EMA weights on the holdout."""
        if self.data.num_holdout == 0:
            return {"top1": float("nan"), "top5": float("nan"), "count": 0}
        dataset = self.strategy.distribute_datasets_from_function(self._holdout_fn)
        steps = tf.constant(self._holdout_steps)
        self.ema.swap()
        try:
            hit1, hit5, count = self._eval_steps(iter(dataset), steps).numpy()
        finally:
            self.ema.swap()
        return {"top1": hit1 / count, "top5": hit5 / count, "count": int(count)}

    def train_iterator(self, step):
        """Returns the distributed iterator over the batches after `step`."""
        fn = pipeline.train_dataset_fn(
            self.config,
            self.data,
            self.steps_per_epoch,
            first_epoch=step // self.steps_per_epoch,
            skip_batches=step % self.steps_per_epoch,
        )
        return iter(self.strategy.distribute_datasets_from_function(fn))

    def run_steps(self, iterator, steps):
        """Runs `steps` training steps; returns their mean losses."""
        losses = self._train_steps(iterator, tf.constant(steps)).numpy()
        self.epoch_loss.assign_add(float(np.sum(losses)))
        return losses

    def save_best(self):
        """Writes the EMA weights to model.weights.h5, atomically."""
        path = os.path.join(self.workdir, CHECKPOINT_NAME)
        self.ema.swap()
        try:
            with atomic_path(path, suffix=".weights.h5") as tmp:
                self.model.save_weights(tmp)
        finally:
            self.ema.swap()


def _next_call_length(run, step):
    """Steps of the next call: at most steps_per_call, ending at epoch ends and
    checkpoint steps."""
    config = run.config
    limit = min(config.steps_per_call, run.steps_per_epoch - step % run.steps_per_epoch)
    every = config.checkpoint_every_steps
    if every:
        limit = min(limit, every - step % every)
    return limit


def train_and_evaluate(config, workdir, strategy=None, report=print):
    """Trains `config` in `workdir`, resuming from its latest checkpoint, and
    evaluates the EMA weights on the holdout after every epoch.

    Returns a TrainResult whose model holds the EMA weights of the best
    holdout epoch (also saved as model.weights.h5). `report` receives the
    progress lines. Seeds and op determinism are set for the call only
    (zoo.state.seeded): afterwards the process's generators and TensorFlow's
    determinism switch are as they were.
    """
    with seeded(config.seed, config.deterministic):
        return _train_and_evaluate(config, workdir, strategy, report)


def _train_and_evaluate(config, workdir, strategy, report):
    strategy = strategy or tf.distribute.get_strategy()
    if tf.io.gfile.exists(workdir) and not tf.io.gfile.isdir(workdir):
        raise TrainError(f"--workdir {workdir} is a file; pass a folder")
    run = _Run(config, workdir, strategy, report)
    os.makedirs(workdir, exist_ok=True)
    if run.chief:
        write_atomic(os.path.join(workdir, CONFIG_NAME), config.to_json())
    step = run.restore()
    history = _read_json(os.path.join(workdir, HISTORY_NAME), [])
    history = [h for h in history if h["epoch"] * run.steps_per_epoch <= step]
    writer = (
        tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
        if run.chief
        else tf.summary.create_noop_writer()
    )
    report(
        f"[train] {config.arch} x{config.width_multiplier} {config.objective} on "
        f"{run.dataset.name}: {run.data.num_train} images (+{run.data.num_holdout} "
        f"holdout), {run.dataset.num_classes} classes, {config.epochs} epochs x "
        f"{run.steps_per_epoch} steps, {run.replicas} replica(s), {run.precision}"
        f"{', XLA' if run.jit_compile else ''}"
        + (f"; resuming at step {step}" if step else "")
    )
    step_losses = []
    initial = None  # the first loss this process sees: the explosion yardstick
    if step and step % run.steps_per_epoch == 0:
        if len(history) < step // run.steps_per_epoch:  # killed during _end_epoch
            _end_epoch(run, step // run.steps_per_epoch, history, writer, None)
        run.epoch_loss.assign(0.0)
    stop = _should_stop(config, history)
    iterator = run.train_iterator(step) if step < run.total_steps else None
    while step < run.total_steps and not stop:
        epoch = step // run.steps_per_epoch
        start = time.perf_counter()
        while True:
            n = _next_call_length(run, step)
            call_start = time.perf_counter()
            losses = run.run_steps(iterator, n)
            step += n
            step_losses.extend(float(x) for x in losses)
            _report_call(run, step, losses, time.perf_counter() - call_start)
            if not np.all(np.isfinite(losses)):
                raise TrainError(
                    f"loss became {losses[-1]} at step {step}; lower the learning "
                    "rate (--base_learning_rate) or check the data"
                )
            initial = initial if initial is not None else float(np.mean(losses))
            if float(np.max(losses)) > EXPLODE_FACTOR * max(initial, 1.0):
                raise TrainError(
                    f"loss exploded to {float(np.max(losses)):.4g} at step {step} "
                    f"(over {EXPLODE_FACTOR}x its first value {initial:.4g}); lower "
                    "the learning rate (--base_learning_rate) or check the data"
                )
            if step % run.steps_per_epoch == 0:
                break
            every = config.checkpoint_every_steps
            if every and step % every == 0:
                run.manager.save(checkpoint_number=step)
        _end_epoch(run, epoch + 1, history, writer, time.perf_counter() - start)
        stop = _should_stop(config, history)
    if stop:
        report(f"[train] early stopping after epoch {history[-1]['epoch']}")
    return _finish(run, history, step_losses)


def _report_call(run, step, losses, seconds):
    epoch = (step - 1) // run.steps_per_epoch + 1
    images = len(losses) * run.config.global_batch_size
    lr = float(run.schedule(step))
    run.report(
        f"[train] epoch {epoch}/{run.config.epochs} step {step}/{run.total_steps} "
        f"loss {float(np.mean(losses)):.4f} lr {lr:.4g} {images / seconds:.0f} img/s"
    )


def _end_epoch(run, epoch, history, writer, seconds):
    """Checkpoints, evaluates the EMA weights on the holdout, records the
    epoch and keeps the best epoch's weights."""
    step = epoch * run.steps_per_epoch
    run.manager.save(checkpoint_number=step)
    loss = float(run.epoch_loss.numpy()) / run.steps_per_epoch
    run.epoch_loss.assign(0.0)
    holdout = run.evaluate_holdout()
    images_per_second = (
        run.steps_per_epoch * run.config.global_batch_size / seconds
        if seconds
        else None
    )
    entry = {
        "epoch": epoch,
        "step": step,
        "loss": loss,
        "lr": float(run.schedule(step)),
        **holdout,
        "seconds": seconds,
        "images_per_second": images_per_second,
    }
    best = _best(history)
    improved = best is None or not holdout["top1"] <= best["top1"]
    history.append(entry)
    if run.chief:
        if improved or math.isnan(holdout["top1"]):
            run.save_best()
        write_atomic(
            os.path.join(run.workdir, HISTORY_NAME), json.dumps(history, indent=1)
        )
        with writer.as_default(step=step):
            tf.summary.scalar("train/loss", loss)
            tf.summary.scalar("train/learning_rate", entry["lr"])
            if images_per_second:
                tf.summary.scalar("train/images_per_second", images_per_second)
            tf.summary.scalar("holdout/top1", holdout["top1"])
            tf.summary.scalar("holdout/top5", holdout["top5"])
        writer.flush()
    run.report(
        f"[train] epoch {epoch}/{run.config.epochs} done: loss {loss:.4f} holdout "
        f"(EMA) top1 {holdout['top1']:.4f} top5 {holdout['top5']:.4f} "
        f"({holdout['count']} images)"
        + (f" {images_per_second:.0f} img/s" if images_per_second else "")
    )


def _best(history):
    """Returns the history entry with the best holdout top-1 (first on ties)."""
    scored = [h for h in history if not math.isnan(h["top1"])]
    return max(scored, key=lambda h: h["top1"]) if scored else None


def _should_stop(config, history):
    patience = config.early_stopping_patience
    best = _best(history)
    return bool(patience and best and history[-1]["epoch"] - best["epoch"] >= patience)


def _finish(run, history, step_losses):
    """Writes train_info.json, loads the best weights; returns a TrainResult."""
    config = run.config
    best = _best(history) or (history[-1] if history else {})
    path = os.path.join(run.workdir, CHECKPOINT_NAME)
    if os.path.isfile(path):
        run.model.load_weights(path)
    info = {
        "config": json.loads(config.to_json()),
        "objective_hparams": run.objective.hparams(),
        "num_classes": run.dataset.num_classes,
        "class_names": list(run.dataset.class_names),
        "dataset": run.dataset.name,
        "num_train": run.data.num_train,
        "num_holdout": run.data.num_holdout,
        "steps_per_epoch": run.steps_per_epoch,
        "best_epoch": best.get("epoch"),
        "holdout": best,
        "final": history[-1] if history else {},
        "history": history,
        "replicas": run.replicas,
        "precision": run.precision,
        "jit_compile": run.jit_compile,
        "matmul_pointwise_conv": run.matmul_pointwise_conv,
        "device": device_description(),
        "code_version": code_version(),
    }
    if run.chief:
        write_atomic(os.path.join(run.workdir, INFO_NAME), json.dumps(info, indent=1))
    return TrainResult(
        workdir=run.workdir, info=info, model=run.model, step_losses=step_losses
    )


def load_trained_model(workdir):
    """Returns (model, objective, info) rebuilt from a finished run's workdir,
    holding the EMA weights of its best holdout epoch; raises TrainError if
    the workdir is not one."""
    info_path = os.path.join(workdir, INFO_NAME)
    weights_path = os.path.join(workdir, CHECKPOINT_NAME)
    if not (os.path.isfile(info_path) and os.path.isfile(weights_path)):
        raise TrainError(
            f"{workdir} is not a training checkpoint (no {INFO_NAME} and "
            f"{CHECKPOINT_NAME}); pass the --workdir of a finished zoo-train run"
        )
    try:
        with open(info_path) as f:
            info = json.load(f)
        config = TrainConfig.from_json(json.dumps(info["config"]))
    except (ValueError, KeyError, TypeError) as error:
        raise TrainError(f"{info_path} is unreadable: {error}") from None
    objective = create_objective(config.objective, **config.objective_hparams)
    with seeded(config.seed):  # its weights are loaded next; leave no seed behind
        model = build_model(config, objective, info["num_classes"])
    try:
        model.load_weights(weights_path)
    except (ValueError, OSError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise TrainError(
            f"{weights_path} is corrupt or does not match its config ({first[:160]})"
        ) from None
    return model, objective, info
