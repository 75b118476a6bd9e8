"""ResNet-50 (width x1/4, 64 px) on Imagenette, small enough for a laptop CPU.

Commands (TFDS data prepared with `tfds build imagenette`, or an image folder
ROOT/{train,val}/<wnid>/*.JPEG such as the fast.ai release unpacked):
  zoo-train --config=imagenette --objective=softmax --workdir=runs/imagenette_softmax
  zoo-train --config=imagenette --dataset=path/to/imagenette \
      --objective=softmax --workdir=runs/imagenette_softmax
Expected: holdout top-1 well above chance (10%) within a few epochs; see the
closing notes of the trainer issue for measured figures.
"""

from zoo.config import TrainConfig


def get_config():
    """Returns the Imagenette config (10 classes)."""
    return TrainConfig(
        arch="resnet50",
        width_multiplier=0.25,
        image_size=64,
        dataset="tfds:imagenette",
        holdout_fraction=0.05,
        global_batch_size=64,
        epochs=6,
        base_learning_rate=0.4,
        warmup_epochs=1.0,
        lr_decay_per_epoch=0.85,
        weight_decay=5e-5,
        crop_area_range=(0.25, 1.0),
        cache_images=False,
        objective_overrides={"squared_error": {"base_learning_rate": 4e-5}},
    )
