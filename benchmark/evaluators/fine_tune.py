"""Fine-tuning: the whole module plus a new dense head, trained on the target.

Protocol (Kornblith et al. 2021 after Kornblith et al. 2019, docs/paper.md):
ImageNet-style augmentation (random resized crop + horizontal flip), SGD with
momentum 0.9, cosine decay of the learning rate to 0 over `steps` steps
(20,000 in the paper) without restarts, cross-entropy of a new zero-initialised
dense head on the module's features, batch-norm statistics updated
(`module(images, training=True)`). The grid is 8 log-spaced learning rates in
[1e-4, 1e-1] x (8 log-spaced weight decays in [1e-6, 1e-3] plus none); the
best pair on a fixed stratified validation split of the training set is
retrained on train + validation and scored on test.

Weight decay "divided by the learning rate": a grid value wd means the L2
coefficient is wd / lr, so every step shrinks a weight by the same fraction wd
whatever the learning rate. It is applied decoupled from the gradient (not
through the momentum buffer): after each update v <- v - wd * c(t) * v, with
c(t) = lr(t) / lr the cosine factor; without momentum this equals adding
(wd / lr) / 2 ||v||^2 to the loss. It acts on kernels (variables of rank >= 2,
the head's included), never on batch-norm parameters or biases.

The module's own `regularization_losses` (its pre-training weight decay) are
added to the loss only with `module_regularization=True`.

Momentum is the TF1 MomentumOptimizer form the paper used:
m <- 0.9 m + g, v <- v - lr(t) m.

Images are the module's own size (its declared input size, or the harness's
--image_size override) and are converted to its dtype and value range.

Distribution: the context's tf.distribute strategy; the module is loaded in
its scope, gradients are summed across replicas (the loss is normalised by
the global batch), and after every step the replicas' copies of the
batch-norm moving statistics (which the restored functions update per
replica, from each replica's slice of the batch) are set to their mean, so
two replicas train like one device up to rounding.
"""

import math
import time

import numpy as np
import tensorflow as tf

from benchmark.data.transfer import dataset_metric
from benchmark.evaluators.base import (
    EVALUATORS,
    Evaluator,
    Measurement,
    check_positive,
)
from benchmark.modules.loading import ModuleError, select_output
from benchmark.stats import metrics
from zoo import data as zoo_data

# The protocol's grid, and a 2 x 2 corner of it for CI and laptops.
FULL_LEARNING_RATES = tuple(float(v) for v in np.logspace(-4, -1, 8))
FULL_WEIGHT_DECAYS = (0.0,) + tuple(float(v) for v in np.logspace(-6, -3, 8))
PROGRESS_STEPS = 100
GRIDS = {
    "full": (FULL_LEARNING_RATES, FULL_WEIGHT_DECAYS),
    "small": (FULL_LEARNING_RATES[5::2], (0.0, FULL_WEIGHT_DECAYS[6])),
}


def grid(name):
    """Returns (learning_rates, weight_decays) of the grid `name`."""
    if name not in GRIDS:
        raise ValueError(f"unknown grid '{name}'; choose one of: {', '.join(GRIDS)}")
    return GRIDS[name]


@EVALUATORS.register("fine_tune")
class FineTune(Evaluator):
    """Whole-network fine-tuning with (lr, wd) chosen on validation.

    Args:
      data: dataset spec (train and test splits).
      learning_rates: peak learning rates of the grid.
      weight_decays: decoupled weight decays of the grid (0 = none).
      steps: training steps per fit (paper: 20,000).
      batch_size: global batch size.
      momentum: SGD momentum.
      crop_area_range: area range of the random resized crop.
      flip: random horizontal flips.
      eval_crop_fraction: central crop fraction of validation and test images
        (1.0: resize the shorter side, as the linear probe's features).
      module_regularization: add the module's regularization_losses.
      val_fraction: fraction of each class held out for selection.
      val_seed: seed of the validation split.
      seed: seed of shuffling and augmentation.
      max_per_class: use at most this many images per class and split.
      cache_images: keep the decoded training images in memory.
      train_examples: fine-tune on a seeded sample of this many training
        examples (VTAB-1k: 1000; val_fraction of them choose the grid
        point, then all of them are trained on); None: the whole split.
      sample_seed: seed of that sample.
    """

    name = "fine_tune"
    requires = ("fine_tuning",)

    def __init__(
        self,
        *,
        data=None,
        learning_rates=FULL_LEARNING_RATES,
        weight_decays=FULL_WEIGHT_DECAYS,
        steps=20_000,
        batch_size=256,
        momentum=0.9,
        crop_area_range=(0.08, 1.0),
        flip=True,
        eval_crop_fraction=1.0,
        module_regularization=False,
        val_fraction=0.2,
        val_seed=0,
        seed=0,
        max_per_class=None,
        cache_images=False,
        train_examples=None,
        sample_seed=0,
    ):
        check_positive(steps=steps, batch_size=batch_size, max_per_class=max_per_class)
        check_positive(train_examples=train_examples)
        if not learning_rates or not weight_decays:
            raise ValueError(
                "the learning-rate and weight-decay grids must be non-empty"
            )
        if any(not math.isfinite(v) or v <= 0 for v in learning_rates):
            raise ValueError(f"learning rates must be positive, got {learning_rates}")
        if any(not math.isfinite(v) or v < 0 for v in weight_decays):
            raise ValueError(f"weight decays must be >= 0, got {weight_decays}")
        self.data = data
        self.learning_rates = tuple(float(v) for v in learning_rates)
        self.weight_decays = tuple(float(v) for v in weight_decays)
        self.steps = steps
        self.batch_size = batch_size
        self.momentum = momentum
        self.crop_area_range = tuple(crop_area_range)
        self.flip = flip
        self.eval_crop_fraction = eval_crop_fraction
        self.module_regularization = module_regularization
        self.val_fraction = val_fraction
        self.val_seed = val_seed
        self.seed = seed
        self.max_per_class = max_per_class
        self.cache_images = cache_images
        self.train_examples = train_examples
        self.sample_seed = sample_seed

    def run(self, context):
        """Yields Measurement("accuracy", test score, {"learning_rate",
        "weight_decay", "val_accuracy", "final_loss"}) of fine-tuning on the
        dataset; the score is mean per-class accuracy for Pets and Flowers,
        top-1 otherwise (as the linear probe); val_accuracy is None for a
        one-point grid (nothing was selected)."""
        module, report = context.module, context.report
        data = context.dataset(self.data)
        size = module.image_size
        strategy = context.strategy or tf.distribute.get_strategy()
        metric = dataset_metric(data)
        score = metrics.get_metric(metric)
        train_split, test_split = data.train_split, data.test_split
        if not train_split or not test_split:
            raise ValueError(f"{data.name} needs a train and a test split to fine-tune")
        labels = data.labels(train_split, max_per_class=self.max_per_class)
        train_all = data.as_dataset(train_split, max_per_class=self.max_per_class)
        sample = metrics.sample_indices(
            len(labels), self.train_examples, self.sample_seed
        )
        if len(sample) < len(labels):
            train_all = _subset(train_all, sample, len(labels))
            labels = labels[sample]
        tr, val = metrics.stratified_split(labels, self.val_fraction, self.val_seed)
        tuner = _FineTuner(module, data.num_classes, strategy, self)
        if self.cache_images:
            train_all = train_all.cache()
        fit_set = _subset(train_all, tr, len(labels))
        val_set = _subset(train_all, val, len(labels))
        val_score, lr, wd = self._select(
            tuner, fit_set, val_set, labels[val], (metric, score), size, report
        )
        loss = tuner.fit(self._train_pipeline(train_all, size), lr, wd, report)
        test = data.as_dataset(test_split, max_per_class=self.max_per_class)
        test_labels = data.labels(test_split, max_per_class=self.max_per_class)
        value = score(test_labels, tuner.predict(self._eval(test, size)))
        report(f"[fine_tune] lr {lr:.3g} wd {wd:.3g} on train+val: test {value:.4f}")
        yield Measurement(
            "accuracy",
            value,
            selected={
                "learning_rate": lr,
                "weight_decay": wd,
                "val_accuracy": val_score,
                "final_loss": loss,
            },
            dataset=data.name,
            split=f"{train_split}->{test_split}",
            train_size=len(labels),
            test_size=len(test_labels),
        )

    def _select(self, tuner, fit_set, val_set, val_labels, metric, size, report):
        """Returns (validation score, lr, wd) of the best grid point; ties keep
        the first in grid order, diverged fits never win. A one-point grid
        has nothing to choose: no selection fit, validation score None."""
        name, score = metric
        if len(self.learning_rates) * len(self.weight_decays) == 1:
            return None, self.learning_rates[0], self.weight_decays[0]
        best = (-math.inf, None, None)
        for lr in self.learning_rates:
            for wd in self.weight_decays:
                start = time.perf_counter()
                loss = tuner.fit(self._train_pipeline(fit_set, size), lr, wd, report)
                value = -math.inf
                if math.isfinite(loss):
                    predictions = tuner.predict(self._eval(val_set, size))
                    value = score(val_labels, predictions)
                report(
                    f"[fine_tune] lr {lr:.3g} wd {wd:.3g}: loss {loss:.4f} val "
                    f"{name} {value:.4f} ({time.perf_counter() - start:.0f}s)"
                )
                if value > best[0]:
                    best = (value, lr, wd)
        if best[1] is None:
            raise ValueError(
                "fine-tuning diverged for every grid point; try smaller learning rates"
            )
        return best

    def _train_pipeline(self, examples, size):
        """Returns the endless, shuffled, augmented (images, labels) batches."""
        seeds = tf.data.Dataset.random(seed=self.seed).batch(2)

        def augment(example, seed):
            image = zoo_data.train_preprocess(
                example["image"],
                size,
                seed=seed,
                area_range=self.crop_area_range,
                flip=self.flip,
            )
            return image, example["label"]

        return (
            tf.data.Dataset.zip(
                examples.repeat().shuffle(10_000, seed=self.seed), seeds
            )
            .map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(self.batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )

    def _eval(self, examples, size):
        """Returns batches of center-cropped images, in order."""
        crop = self.eval_crop_fraction
        return (
            examples.map(
                lambda e: zoo_data.eval_preprocess(e["image"], size, crop),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
            .batch(max(self.batch_size, 64))
            .prefetch(tf.data.AUTOTUNE)
        )


def _subset(examples, indices, total):
    """Returns the elements of `examples` (`total` of them) at `indices`."""
    keep = np.zeros(total, dtype=bool)
    keep[indices] = True
    keep = tf.constant(keep)
    return examples.enumerate().filter(lambda i, _: keep[i]).map(lambda _, e: e)


class _FineTuner:
    """The module, its new head and their optimiser state, under `strategy`.

    One traced train loop serves every grid point: the learning rate and
    weight decay are variables, and `fit` restores the pre-trained weights,
    zeroes the head and the momentum before training.
    """

    def __init__(self, module, num_classes, strategy, config):
        self.saved = module
        self.strategy = strategy
        self.config = config
        with strategy.scope():
            self.module = module.load()
            self._check(module.handle)
            size = module.image_size
            # Restored functions of distributed variables run in replica context;
            # the probe is at the module's own size (fixed-size modules).
            probe = strategy.run(
                lambda: self._features(tf.zeros([1, size, size, 3]), training=False)
            )
            dim = int(strategy.experimental_local_results(probe)[0].shape[-1])
            self.head_w = tf.Variable(tf.zeros([dim, num_classes]), name="head/kernel")
            self.head_b = tf.Variable(tf.zeros([num_classes]), name="head/bias")
            self.variables = list(self.module.trainable_variables) + [
                self.head_w,
                self.head_b,
            ]
            self.momenta = [
                tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False)
                for v in self.variables
            ]
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.lr = tf.Variable(0.0, trainable=False)
            self.wd = tf.Variable(0.0, trainable=False)
        self.decayed = [v for v in self.variables if v.shape.rank >= 2]
        # Batch-norm moving statistics and the like: each replica updates its
        # own copy inside the restored functions; they are averaged after
        # every step.
        self.statistics = [
            v
            for v in self.module.variables
            if not v.trainable and tf.as_dtype(v.dtype).is_floating
        ]
        self.initial = [v.numpy() for v in self.module.variables]
        self._train_steps = tf.function(self._train_steps_fn)
        self._predict = tf.function(self._predict_fn)

    def _check(self, handle):
        """Raises ModuleError unless the freshly loaded module can be fine-tuned."""
        if not list(getattr(self.module, "trainable_variables", None) or []):
            raise ModuleError(
                f"{handle} cannot be fine-tuned: it exposes no trainable_variables"
            )

    def _features(self, images, training):
        """Returns the fresh module's features of float images in [0, 1]."""
        outputs = self.module(self.saved.prepare(images), training=training)
        return tf.cast(
            select_output(outputs, self.saved.output, self.saved), tf.float32
        )

    def reset(self, lr, wd):
        """Restores the pre-trained weights and zeroes the head and momentum."""
        for variable, value in zip(self.module.variables, self.initial):
            variable.assign(value)
        for variable in [self.head_w, self.head_b, *self.momenta]:
            variable.assign(tf.zeros_like(variable))
        self.step.assign(0)
        self.lr.assign(lr)
        self.wd.assign(wd)

    def fit(self, batches, lr, wd, report=None):
        """Returns the mean loss of the last chunk of steps after training for
        `config.steps` steps from the pre-trained weights (NaN if diverged);
        `report` gets the loss every PROGRESS_STEPS steps."""
        self.reset(lr, wd)
        iterator = iter(self.strategy.experimental_distribute_dataset(batches))
        total, chunk = self.config.steps, max(1, min(self.config.steps, PROGRESS_STEPS))
        loss, done = float("nan"), 0
        while done < total:
            n = min(chunk, total - done)
            loss = float(self._train_steps(iterator, tf.constant(n)))
            done += n
            if report:
                report(
                    f"[fine_tune] lr {lr:.3g} wd {wd:.3g} step {done}/{total} "
                    f"loss {loss:.4f}"
                )
            if not math.isfinite(loss):
                break
        return loss

    def _replica_grads(self, images, labels):
        replicas = self.strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            features = self._features(images, training=True)
            logits = tf.matmul(features, self.head_w) + self.head_b
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.cast(labels, tf.int32), logits=logits
            )
            loss = tf.reduce_sum(per_example) / self.config.batch_size
            regularization = getattr(self.module, "regularization_losses", None)
            if self.config.module_regularization and regularization:
                extra = tf.add_n([f() for f in regularization])
                loss += extra / replicas
        grads = tape.gradient(loss, self.variables)
        grads = [
            tf.zeros_like(v) if g is None else g for g, v in zip(grads, self.variables)
        ]
        return loss, grads

    def _train_steps_fn(self, iterator, num_steps):
        total = tf.constant(0.0)
        for _ in tf.range(num_steps):
            images, labels = next(iterator)
            loss, grads = self.strategy.run(self._replica_grads, args=(images, labels))
            total += self.strategy.reduce("SUM", loss, axis=None)
            grads = [self.strategy.reduce("SUM", g, axis=None) for g in grads]
            self._apply(grads)
            self._average_statistics()
        return total / tf.cast(num_steps, tf.float32)

    def _average_statistics(self):
        """Sets every replica's copy of the moving statistics to their mean
        (a no-op with one replica)."""
        if self.strategy.num_replicas_in_sync == 1:
            return
        for variable in self.statistics:
            copies = self.strategy.experimental_local_results(variable)
            mean = tf.add_n([tf.identity(c) for c in copies]) / len(copies)
            variable.assign(mean)

    def _apply(self, grads):
        """One SGD-momentum step with cosine decay and decoupled weight decay."""
        t = tf.cast(self.step, tf.float32)
        factor = 0.5 * (1.0 + tf.cos(math.pi * t / float(self.config.steps)))
        lr_t = self.lr * factor
        for variable, grad, momentum in zip(self.variables, grads, self.momenta):
            momentum.assign(self.config.momentum * momentum + grad)
            variable.assign_sub(lr_t * momentum)
        for variable in self.decayed:
            variable.assign_sub(self.wd * factor * variable)
        self.step.assign_add(1)

    def _predict_fn(self, images):
        def replica_fn(images):
            features = self._features(images, training=False)
            logits = tf.matmul(features, self.head_w) + self.head_b
            return tf.argmax(logits, axis=1)

        # Each replica scores its slice of the batch; gather keeps the order.
        return self.strategy.gather(
            self.strategy.run(replica_fn, args=(images,)), axis=0
        )

    def predict(self, batches):
        """Returns the [N] int64 predicted classes of the image batches."""
        batches = self.strategy.experimental_distribute_dataset(batches)
        return np.concatenate([self._predict(images).numpy() for images in batches])
