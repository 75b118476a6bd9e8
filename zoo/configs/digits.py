"""The embedded default: ResNet-50 (width x1/8, 32 px) on digits 0-4.

Command:
  zoo-train --config=digits --objective=softmax --workdir=runs/digits_softmax
Expected: holdout top-1 above 0.9 after 12 epochs, about 30 s on 2 CPU cores.
The transfer half of the experiment (digits 5-9) is run by `zoo-demo`.
"""

from zoo.config import TrainConfig


def get_config():
    """Returns the digits config (small enough for a laptop or CI)."""
    return TrainConfig(
        arch="resnet50",
        width_multiplier=0.125,
        image_size=32,
        dataset="digits_0to4",
        holdout_fraction=0.1,
        global_batch_size=64,
        epochs=12,
        base_learning_rate=0.4,
        warmup_epochs=1.0,
        lr_decay_per_epoch=0.9,
        weight_decay=5e-5,
        crop_area_range=(0.6, 1.0),
        random_flip=False,  # a mirrored digit is another glyph
        cache_images=True,
        # The squared-error loss starts near 1e4 (M = 60, s = 10).
        objective_overrides={"squared_error": {"base_learning_rate": 4e-5}},
    )
