"""Keras files and models as modules: `.keras` (Keras 3's zip) and full-model
`.h5` files are scored as they are, without an export step.

Before anything is deserialised, `scan` reads the file's model config and
refuses what would run code or read files on load: `Lambda` layers (their
Python bytecode is in the config), classes from outside Keras (custom
objects: code this benchmark does not have, so it could not load them
anyway), `TFSMLayer` (it loads another SavedModel from a path), and a zip
that expands past export.archive's bounds. The model is then loaded with
`safe_mode=True` and `compile=False`.

The contract of a Keras model (KerasModule):
  * features: the input of its last `Dense` layer when the model ends in
    one (trailing `Activation`, `Softmax` and `Dropout` layers skipped): a
    classifier's penultimate output; else the model's own [batch, C] output
    (`include_top=False, pooling="avg"`); singleton spatial dimensions are
    squeezed; a spatial [batch, h, w, C] output is refused (save the model
    with pooling="avg");
  * logits: that `Dense` layer's pre-activation outputs (for `imagenet_ood`
    and calibration); a model without one has none;
  * input size and dtype: the model's input shape and dtype;
  * input normalisation: `0_255` when the model's first layer that changes
    values is a `Rescaling` mapping [0, 255] onto [0, 1] or [-1, 1] (Keras
    applications built with their preprocessing, MobileNetV3 and
    EfficientNet among them); else unit;
  * fine-tuning: `load()` gives a fresh copy of the features model with its
    trainable variables. Keras layer regularisers are not added.
"""

import json
import os
import zipfile

import tensorflow as tf

from benchmark.modules import loading

SUFFIXES = loading.KERAS_SUFFIXES
# Classes a config may not hold, and why.
REFUSED_CLASSES = {
    "Lambda": "a Lambda layer (Python bytecode in the config)",
    "__lambda__": "a lambda function (Python bytecode in the config)",
    "TFSMLayer": "a TFSMLayer (it loads a SavedModel from a path)",
}
TRAILING = ("Activation", "Softmax", "Dropout", "ReLU")
# The zip entries Keras 3 writes.
KERAS_ENTRIES = (
    "config.json",
    "metadata.json",
    "model.weights.h5",
    "model.weights.npz",
)


class KerasFileError(ValueError):
    """A Keras file that cannot be scored; the message names the fix."""


def scan(path):
    """Raises KerasFileError unless the Keras file at `path` is a model whose
    config holds only Keras classes and none of REFUSED_CLASSES."""
    if path.endswith(".keras"):
        config = _keras_config(path)
    else:
        config = _h5_config(path)
    _check_config(config, path)


def _keras_config(path):
    from export.archive import EXPANSION_FLOOR, MAX_EXPANSION

    name = os.path.basename(path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            size = sum(i.file_size for i in infos)
            bound = max(EXPANSION_FLOOR, MAX_EXPANSION * os.path.getsize(path))
            if size > bound:
                raise KerasFileError(
                    f"{name} expands to {size} bytes, over {bound} (at most "
                    f"{MAX_EXPANSION}x its size); it is not a model Keras wrote"
                )
            for info in infos:
                if info.filename not in KERAS_ENTRIES and not info.filename.startswith(
                    "assets/"
                ):
                    raise KerasFileError(
                        f"{name} holds {info.filename!r}, which Keras does not "
                        "write; save the model again with model.save('m.keras')"
                    )
            if "config.json" not in archive.namelist():
                raise KerasFileError(f"{name} has no config.json")
            text = archive.read("config.json")
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise KerasFileError(
            f"{name} is not a valid .keras file ({_first_line(e)}); save the "
            "model with model.save('model.keras')"
        ) from None
    return _parse(text, name)


def _h5_config(path):
    import h5py

    name = os.path.basename(path)
    try:
        with h5py.File(path, "r") as f:
            text = f.attrs.get("model_config")
    except OSError as e:
        raise KerasFileError(
            f"{name} is not a valid HDF5 file ({_first_line(e)}); save the "
            "model with model.save('model.keras')"
        ) from None
    if text is None:
        raise KerasFileError(
            f"{name} holds weights only, not a model (no model_config); save "
            "the whole model with model.save('model.keras')"
        )
    return _parse(text, name)


def _parse(text, name):
    try:
        config = json.loads(text.decode() if isinstance(text, bytes) else text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KerasFileError(f"{name}: its model config is not JSON ({e})") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise KerasFileError(f"{name}: its model config names no model class")
    return config


def _check_config(config, path):
    name = os.path.basename(path)
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        stack.extend(item.values())
        cls = item.get("class_name")
        if not isinstance(cls, str):
            continue
        if cls in REFUSED_CLASSES:
            raise KerasFileError(
                f"{name} holds {REFUSED_CLASSES[cls]}, which would run on load; "
                "replace it with Keras layers, or export the model as a SavedModel"
            )
        module = item.get("module")
        registered = item.get("registered_name") or ""
        foreign = (
            module is not None
            and module != "keras"
            and not str(module).startswith("keras.")
        )
        if foreign or (">" in registered):
            raise KerasFileError(
                f"{name} uses the custom class {cls} (module {module}); the "
                "benchmark loads only Keras's own classes: export the model as a "
                "SavedModel (tf.saved_model.save) and pass that folder"
            )


def load(path, handle):
    """Returns the scanned Keras model at `path`, loaded safely."""
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # noqa: BLE001 - report any load failure as one line
        raise loading.ModuleError(
            f"cannot load {handle} as a Keras model: {_first_line(e)}; save it "
            "with model.save('model.keras')"
        ) from None


def _first_line(error):
    text = " ".join(str(error).split())
    return text[:200] if text else type(error).__name__


def input_size(model):
    """Returns the model's square input side, or None."""
    shape = _input_shape(model)
    if shape and len(shape) == 4 and shape[1] and shape[1] == shape[2]:
        return int(shape[1])
    return None


def input_dtype(model):
    """Returns the model's input dtype name (float32 when it declares none)."""
    inputs = getattr(model, "inputs", None) or []
    dtype = getattr(inputs[0], "dtype", None) if inputs else None
    return tf.as_dtype(dtype).name if dtype else "float32"


def _input_shape(model):
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        return None
    return tuple(shape) if isinstance(shape, (list, tuple)) else None


def _layers(model):
    """Yields the model's layers in order, nested models expanded."""
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _layers(layer)
        else:
            yield layer


def detected(model):
    """Returns ("0_255", source) when the model's first value-changing layer
    is a Rescaling from [0, 255] (to [0, 1] or [-1, 1]), else None."""
    for layer in _layers(model):
        kind = type(layer).__name__
        if kind in ("InputLayer", "ZeroPadding2D", "Resizing", "CenterCrop"):
            continue
        if kind == "Rescaling":
            scale = float(getattr(layer, "scale", 1.0))
            offset = float(getattr(layer, "offset", 0.0))
            if abs(scale * 255 - 1) < 1e-3 or abs(scale * 127.5 - 1) < 1e-3:
                return "0_255", (
                    f"Keras preprocessing layer {layer.name} "
                    f"(Rescaling scale={scale:.6g}, offset={offset:g})"
                )
        return None
    return None


def split_head(model):
    """Returns (features model, head Dense layer or None) of a Keras model."""
    import keras

    layers = list(model.layers)
    i = len(layers) - 1
    while i >= 0 and type(layers[i]).__name__ in TRAILING:
        i -= 1
    head = layers[i] if i >= 0 else None
    if not isinstance(head, keras.layers.Dense) or len(head.input.shape) != 2:
        return model, None
    if isinstance(model, keras.Sequential):
        return keras.Sequential(layers[:i], name=f"{model.name}_features"), head
    return keras.Model(model.inputs, head.input, name=f"{model.name}_features"), head


class KerasCallable(tf.Module):
    """A Keras features model as the fine-tuner takes a module: `__call__(x,
    training=)`, `variables`, `trainable_variables` and (empty)
    `regularization_losses`."""

    def __init__(self, model):
        super().__init__(name="keras_module")
        self.model = model
        self.regularization_losses = []

    def __call__(self, images, training=False):
        return self.model(images, training=training)

    @property
    def variables(self):
        return list(self.model.variables)

    @property
    def trainable_variables(self):
        return list(self.model.trainable_variables)


class KerasModule(loading.Module):
    """A Keras model scored as a module (see the module docstring)."""

    def _parts(self):
        if not hasattr(self, "_split"):
            features, head = split_head(self.obj)
            call = tf.function(
                lambda x: features(x, training=False), reduce_retracing=True
            )
            self._split = (features, head, call)
        return self._split

    def _call(self, inputs):
        features = self._parts()[2](inputs)
        if features.shape.rank == 4 and not all(d == 1 for d in features.shape[1:3]):
            raise loading.ModuleError(
                f"{self.handle} returns spatial features {features.shape.as_list()}"
                "; save the model with pooling='avg' (or end it in "
                "GlobalAveragePooling2D) so it returns [batch, features]"
            )
        return features

    @property
    def has_logits(self):
        return self._parts()[1] is not None

    def logits(self, images):
        head = self._parts()[1]
        if head is None:
            raise loading.ModuleError(
                f"{self.handle} has no classifier head (no final Dense layer); "
                "this evaluation needs one"
            )
        features = tf.cast(self.features(images), head.kernel.dtype)
        logits = tf.matmul(features, head.kernel)
        if head.bias is not None:
            logits += head.bias
        return tf.cast(logits, tf.float32)

    def endpoint_names(self):
        return []

    def fine_tuning_problem(self):
        if not self.obj.trainable_variables:
            return "it has no trainable variables"
        return None

    def load(self):
        """Returns a fresh copy of the features model (new variables)."""
        return KerasCallable(split_head(load(self.path, self.handle))[0])
