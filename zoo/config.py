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
      max_per_class: use at most this many training images per class.
      holdout_fraction: fraction of the training split held out (by a hash of
        the example id) for early stopping and reporting.
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
    max_per_class: int | None = None
    holdout_fraction: float = 0.04
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
        """Returns the config stored by `to_json`."""
        values = json.loads(text)
        values["crop_area_range"] = tuple(values["crop_area_range"])
        return cls(**values)
