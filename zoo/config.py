"""The training configuration: one dataclass, filled by a config file and flags."""

import dataclasses
import json


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (the paper's recipe by default).

    Args:
      arch: registered architecture name.
      width_multiplier: channel multiplier of the architecture.
      sync_bn: batch-norm statistics over the global batch (all replicas), so
        the loss curve does not depend on the replica count.
      image_size: training and evaluation resolution.
      objective: registered objective name.
      objective_hparams: overrides of the objective's published defaults.
      dataset: dataset spec (registered name, "tfds:NAME" or image-folder path).
      data_dir: TFDS data directory.
      manual_dir: TFDS manual-download directory (imagenet2012's tar files).
      max_per_class: use at most this many training images per class.
      holdout_fraction: fraction of the training split held out (by a hash of
        the example id) for early stopping and reporting.
      holdout_examples: if set, hold out exactly the first N examples of the
        training split instead (the paper: 50,046 ImageNet images).
      shuffle_buffer: shuffle buffer of decoded training images.
      global_batch_size: images per step over all replicas.
      epochs: passes over the (non-holdout) training data.
      base_learning_rate: learning rate per 256 images (paper: 1.6 at 4096).
      warmup_epochs: linear warm-up length.
      lr_decay_per_epoch: multiplicative decay per epoch after warm-up.
      momentum: Nesterov momentum.
      weight_decay: coefficient of sum ||v||^2 / 2 over conv and dense kernels.
      crop_area_range: area range of the Inception-style random crop.
      random_flip: random horizontal flips in training augmentation.
      seed: seed for initialisation, shuffling and augmentation.
      cache_images: keep decoded images in memory (small datasets).
      ema_decay: decay of the exponential moving average of the weights (the
        EMA weights are evaluated, kept as the best epoch and exported).
      ema_warmup: use min(ema_decay, (1 + t) / (10 + t)) at step t.
      precision: "auto" (bfloat16 on TPU, float16 with loss scaling on GPU,
        float32 on CPU), "float32", "mixed_float16" or "mixed_bfloat16".
      jit_compile: XLA-compile the training step; None means on GPU only
        (TPUStrategy always compiles).
      fused_batch_norm: train batch norm through TensorFlow's fused kernel
        (zoo.models.layers.BatchNormalization; same results, faster).
      matmul_pointwise_conv: run 1x1 convolutions as one matrix product
        (zoo.models.layers.Conv2D; same results); None means on CPU, where
        it was measured faster, and off on GPU and TPU.
      steps_per_call: training steps run per compiled call (host round trip).
      eval_batch_size: global batch of the holdout evaluation.
      deterministic: deterministic ops and input (reruns and resumed runs give
        bitwise the same weights), at some speed cost.
      checkpoint_every_steps: also checkpoint every N steps (always at each
        epoch end).
      keep_checkpoints: how many recent checkpoints to keep.
      early_stopping_patience: stop after this many epochs without a better
        holdout top-1 (None: train all epochs; the best epoch is kept anyway).
      objective_overrides: objective name -> field overrides applied by
        `for_objective` (e.g. squared error's loss is ~1e4 times larger than
        cross-entropy's at the start, so it needs a smaller learning rate).
    """

    arch: str = "resnet50"
    width_multiplier: float = 1.0
    sync_bn: bool = False
    image_size: int = 224
    objective: str = "softmax"
    objective_hparams: dict = dataclasses.field(default_factory=dict)
    dataset: str = "tfds:imagenet2012"
    data_dir: str | None = None
    manual_dir: str | None = None
    max_per_class: int | None = None
    holdout_fraction: float = 0.04
    holdout_examples: int | None = None
    shuffle_buffer: int = 16384
    global_batch_size: int = 4096
    epochs: int = 146
    base_learning_rate: float = 0.1
    warmup_epochs: float = 10.0
    lr_decay_per_epoch: float = 0.975
    momentum: float = 0.9
    weight_decay: float = 8e-5
    crop_area_range: tuple = (0.08, 1.0)
    random_flip: bool = True
    seed: int = 0
    cache_images: bool = False
    ema_decay: float = 0.9999
    ema_warmup: bool = True
    precision: str = "auto"
    jit_compile: bool | None = None
    fused_batch_norm: bool = True
    matmul_pointwise_conv: bool | None = None
    steps_per_call: int = 100
    eval_batch_size: int = 256
    deterministic: bool = False
    checkpoint_every_steps: int | None = None
    keep_checkpoints: int = 2
    early_stopping_patience: int | None = None
    objective_overrides: dict = dataclasses.field(default_factory=dict)

    def replace(self, **changes):
        """Returns a copy with `changes`; unknown fields raise ValueError."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def for_objective(self, name):
        """Returns a copy training objective `name`, with its overrides applied."""
        return self.replace(objective=name, **self.objective_overrides.get(name, {}))

    def to_json(self):
        """Returns the config as a JSON string."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text):
        """Returns the config stored by `to_json` (fields added since then take
        their defaults)."""
        values = json.loads(text)
        values["crop_area_range"] = tuple(values["crop_area_range"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def resume_differences(self, other):
        """Returns the fields, other than those that may change when resuming a
        run, whose values differ between this config and `other`."""
        return [
            f.name
            for f in dataclasses.fields(self)
            if f.name not in RESUMABLE_CHANGES
            and _canonical(getattr(self, f.name)) != _canonical(getattr(other, f.name))
        ]


# Fields that may change between a run and its resumption: they do not change
# the model, the data or the optimisation trajectory.
RESUMABLE_CHANGES = frozenset(
    {
        "epochs",
        "data_dir",
        "manual_dir",
        "cache_images",
        "steps_per_call",
        "eval_batch_size",
        "checkpoint_every_steps",
        "keep_checkpoints",
        "early_stopping_patience",
        "jit_compile",
        "fused_batch_norm",
        "matmul_pointwise_conv",
        "objective_overrides",
    }
)


def _canonical(value):
    return json.loads(json.dumps(value, sort_keys=True))
