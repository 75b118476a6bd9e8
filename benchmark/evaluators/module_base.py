"""The contract of the evaluators that need the module itself, not cached
features: fine-tuning trains it, the ImageNet-OOD and calibration evaluators
read its `logits` signature, Chexpert extracts features from its own CSV data.

They mirror `benchmark.evaluators.base`: keyword-only config stored as one
attribute per argument, `protocol()` recording all of it, and `run` yielding
Measurements. Because one run can measure several datasets or splits (the
ImageNet-OOD sets, Chexpert's two test settings), each result is a
`ModuleMeasurement`: a Measurement that also names its data.
"""

import dataclasses
import functools
import inspect
import json
import os

import tensorflow as tf

from benchmark.evaluators.base import Measurement, _jsonable
from benchmark.modules import LoadedModule, ModuleError, resolve_handle
from zoo.provenance import sha256_tree
from zoo.registry import Registry

DEFAULT_VALUE_RANGE = (0.0, 1.0)

MODULE_EVALUATORS = Registry("module evaluator")


@dataclasses.dataclass(frozen=True)
class ModuleMeasurement(Measurement):
    """A Measurement and the data it was measured on.

    Attributes:
      dataset: the dataset name recorded in the leaderboard ("tfds:imagenet_a").
      split: "train->test" for trained protocols, the test split otherwise.
      train_size: images the protocol trained or fitted on (None: none).
      test_size: images the value was measured on.
    """

    dataset: str = ""
    split: str = ""
    train_size: int | None = None
    test_size: int | None = None


@dataclasses.dataclass
class SavedModule:
    """A Reusable SavedModel and what the module evaluators need of it.

    Args:
      handle: what the user passed.
      path: the local SavedModel directory.
      sha256: content hash of that directory.
      metadata: the module's metadata.json (empty if it has none).
      image_size: the side images are resized and cropped to (None: unknown).
      value_range: (low, high) the module expects pixels in; images in [0, 1]
        are mapped linearly onto it by `rescale`.
    """

    handle: str
    path: str
    sha256: str
    metadata: dict
    image_size: int | None
    value_range: tuple = DEFAULT_VALUE_RANGE

    def rescale(self, images):
        """Returns images in [0, 1] mapped linearly onto `value_range`."""
        low, high = self.value_range
        if (low, high) == DEFAULT_VALUE_RANGE:
            return images
        return low + (high - low) * images

    def load(self):
        """Returns a fresh tf.saved_model.load of the module (new variables)."""
        try:
            return tf.saved_model.load(self.path)
        except Exception as e:  # noqa: BLE001 - report any load failure as one line
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ModuleError(f"cannot load {self.handle}: {message}") from None

    @functools.cached_property
    def obj(self):
        """Returns the loaded module, loaded once (shared by read-only users)."""
        return self.load()

    def logits_fn(self):
        """Returns images -> float32 logits from the `logits` signature.

        Raises ModuleError when the module has none (feature-vector-only
        modules cannot be scored on a classification task without a head).
        """
        signatures = getattr(self.obj, "signatures", {})
        if "logits" not in signatures:
            raise ModuleError(
                f"{self.handle} has no 'logits' signature (it has "
                f"{', '.join(sorted(signatures)) or 'none'}); this evaluation "
                "needs the module's classifier head"
            )
        fn = signatures["logits"]
        (arg,) = list(fn.structured_input_signature[1])[:1]

        def logits(images):
            outputs = fn(**{arg: self.rescale(images)})
            value = outputs["logits"] if "logits" in outputs else outputs
            if isinstance(value, dict):
                (value,) = value.values()
            return tf.cast(value, tf.float32)

        return logits

    def require_image_size(self):
        """Returns `image_size`, or raises ModuleError when it is unknown."""
        if not self.image_size:
            raise ModuleError(
                f"{self.handle} declares no input size; pass --image_size"
            )
        return int(self.image_size)

    def contract(self):
        """Returns the input contract as a JSON-serialisable dict."""
        return {
            "image_size": self.image_size,
            "value_range": [float(v) for v in self.value_range],
        }


def load_saved_module(module, image_size=None):
    """Returns a SavedModule for a handle, a LoadedModule or a SavedModule.

    `image_size` overrides what the module's metadata.json declares.
    """
    if isinstance(module, SavedModule):
        if image_size:
            return dataclasses.replace(module, image_size=int(image_size))
        return module
    if isinstance(module, LoadedModule):
        return SavedModule(
            handle=module.handle,
            path=module.path,
            sha256=module.sha256,
            metadata=module.metadata,
            image_size=int(image_size or module.image_size),
            value_range=tuple(getattr(module, "value_range", DEFAULT_VALUE_RANGE)),
        )
    path = resolve_handle(module)
    metadata = {}
    meta_path = os.path.join(path, "metadata.json")
    if os.path.isfile(meta_path):
        with open(meta_path) as f:
            metadata = json.load(f)
    size = image_size or metadata.get("image_size")
    value_range = metadata.get("value_range") or DEFAULT_VALUE_RANGE
    return SavedModule(
        handle=module,
        path=path,
        sha256=sha256_tree(path),
        metadata=metadata,
        image_size=int(size) if size else None,
        value_range=tuple(float(v) for v in value_range),
    )


class ModuleEvaluator:
    """Base class of the evaluators that use the module itself.

    Contract (as `benchmark.evaluators.base.Evaluator`):
      * the constructor takes keyword config only and stores one attribute per
        argument, under the argument's name;
      * `protocol()` returns every setting as a JSON-serialisable dict,
        recorded verbatim in the leaderboard's `protocol` column;
      * `run(module, data, strategy=..., report=...)` yields
        ModuleMeasurements; hyperparameters are selected on data carved from
        the training data, never on the test data;
      * the class attribute `name` is the registry name.
    What `data` is depends on the evaluator (an ImageDataset, Chexpert CSVs,
    a TFDS data folder); each evaluator's `run` says.
    """

    name = None

    def protocol(self):
        """Returns {"evaluator": name, <each constructor argument>: value, ...}."""
        params = inspect.signature(type(self).__init__).parameters
        config = {"evaluator": self.name}
        for key in params:
            if key != "self":
                config[key] = _jsonable(getattr(self, key))
        return config

    def run(self, module, data, *, strategy=None, report=print):
        """Yields ModuleMeasurements of the protocol.

        Args:
          module: a module handle (path or URL), LoadedModule or SavedModule.
          data: the evaluator's data (see the subclass).
          strategy: a tf.distribute.Strategy for evaluators that train (the
            default strategy when None); others ignore it.
          report: receives one-line progress messages.
        """
        raise NotImplementedError


def create_module_evaluator(name, **config):
    """Returns the module evaluator registered as `name`, built from config."""
    _register_all()
    return MODULE_EVALUATORS.create(name, **config)


def list_module_evaluators(pattern="*"):
    """Returns the sorted names of the module evaluators matching `pattern`."""
    _register_all()
    return MODULE_EVALUATORS.names(pattern)


def _register_all():
    """Imports the evaluator files, which register themselves (here, not at
    import time, because they import this file)."""
    from benchmark.evaluators import (  # noqa: F401
        calibration,
        chexpert,
        fine_tune,
        imagenet_ood,
    )
