"""Architecture registry: `create_model(name, ...)` builds a registered backbone."""

import keras

from zoo.models.layers import ImageNormalization
from zoo.registry import Registry

ARCHITECTURES = Registry("architecture")


def create_backbone(name, **kwargs):
    """Returns the keras.Model registered as `name`: images -> dict of endpoints.

    Every backbone takes float32 images in [0, 1] (normalisation is inside) and
    returns a dict with its named intermediate endpoints and "pre_logits", the
    pooled penultimate features.
    """
    return ARCHITECTURES.create(name, **kwargs)


def list_architectures(pattern="*"):
    """Returns the registered architecture names matching `pattern`."""
    return ARCHITECTURES.names(pattern)


# Imported for their registration side effect.
from zoo.models import inception, resnet  # noqa: E402,F401

__all__ = [
    "ARCHITECTURES",
    "ImageNormalization",
    "create_backbone",
    "create_classifier",
    "list_architectures",
]


def create_classifier(arch, objective, num_classes, image_size=None, **arch_kwargs):
    """Returns a keras.Model: images in [0, 1] -> the backbone's endpoints plus
    "logits", the head made by `objective` (an Objective instance)."""
    backbone = create_backbone(arch, image_size=image_size, **arch_kwargs)
    head = objective.make_head(num_classes)
    outputs = dict(backbone.output)
    outputs["logits"] = head(outputs["pre_logits"])
    return keras.Model(backbone.input, outputs, name=f"{arch}_{objective.name}")
