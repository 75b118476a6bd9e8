"""ResNet-50 (width x1/4) on CIFAR-10 at 32 px: a laptop-sized source task.

Commands (TFDS data prepared with `tfds build cifar10`, or the image folder):
  zoo-train --config=cifar10 --objective=softmax --workdir=runs/c10_softmax
  zoo-train --config=cifar10 --dataset=path/to/cifar10 \
      --max_per_class=500 --epochs=4 --workdir=runs/c10_small
Expected: holdout top-1 well above chance (10%) after a few epochs; the small
folder variant is measured in docs/training.md.
"""

from zoo.config import TrainConfig


def get_config():
    """Returns the CIFAR-10 config."""
    return TrainConfig(
        arch="resnet50",
        width_multiplier=0.25,
        image_size=32,
        dataset="tfds:cifar10",
        holdout_fraction=0.05,
        global_batch_size=128,
        epochs=30,
        base_learning_rate=0.2,
        warmup_epochs=1.0,
        lr_decay_per_epoch=0.9,
        weight_decay=5e-5,
        crop_area_range=(0.35, 1.0),
        ema_decay=0.999,
        cache_images=True,
        objective_overrides={"squared_error": {"base_learning_rate": 4e-5}},
    )
