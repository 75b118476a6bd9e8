"""Loads any image module and discovers its input contract: the one module type.

A handle is one of
  * a catalog name or handle, or a local .tar.gz archive, resolved by
    `export.catalog` (pinned by sha256, rehashed on every use);
  * an http(s):// URL or a gs://....tar.gz, fetched by `export.fetch` into
    tensorflow_hub's cache (TFHUB_CACHE_DIR): bounded in size and time,
    refused unless it is a module archive, and rehashed against what was
    verified on every use; a gs:// folder is read through tensorflow_hub;
  * a local SavedModel directory, in any of the conventions below;
  * a Keras file: `.keras` or a full-model `.h5` (benchmark.modules.keras_files).
Before anything from the module runs, its graph is scanned for file-system,
network and Python ops (`export.safety`; a Keras file's config for Lambda
layers and custom classes); a module holding one is refused.

Conventions (`format` in the contract; docs/evaluations.md has the table):
  * "saved_model": a TF2 SavedModel or TF-Hub module (`__call__` or a
    feature signature);
  * "authors_release": the authors' released TF1 graphs (Kornblith et al.
    2021), detected from the folder itself: a `serving_default` signature
    taking one input `image` and returning `final_avg_pool` and `outputs`.
    The importer's contract applies (export/importer.py): features are
    `final_avg_pool` squeezed to [batch, C], logits are `outputs` without
    the background class 0, endpoints are every output of the signature,
    and the input is normalised by `imagenet_mean_std`;
  * "keras": a Keras 3 model (file or in memory).

The contract is read from whatever the module declares, and each part can be
overridden by the caller:
  * the function: `__call__`, else the signature `feature_vector`, `default`
    or `serving_default` (`signature=` picks another);
  * the output: a tensor, or one entry of a dict (`feature_vector`,
    `default`, `pre_logits`, `final_avg_pool`, or the only entry; `output=`
    picks another; when several entries could be the features, the error
    lists each with its shape). Singleton spatial dimensions are squeezed:
    [batch, 1, 1, C] is read as [batch, C];
  * the input size: metadata.json's `image_size`, else the static [H, W] of
    the chosen function's input (a named signature or any concrete function
    of `__call__`), else DEFAULT_IMAGE_SIZE, recorded as `size_source`;
  * the input dtype: the declared one (float32 by default; uint8 modules get
    images rounded to integers);
  * the input normalisation (export/normalization.py: unit, minus_one_one,
    imagenet_mean_std, 0_255, uint8, or a linear `value_range`): the
    override, else metadata.json's `input_normalization` or `value_range`,
    else what the module's convention says (the authors' release; a Keras
    model's leading Rescaling layer), else uint8 for integer inputs and
    unit for float ones, recorded as `normalization_source`. Images enter
    the harness in [0, 1] and are normalised on the way in.
One forward pass on a probe batch checks the output before any dataset is read.
"""

import dataclasses
import json
import os
import urllib.error

import numpy as np
import tensorflow as tf

from export import normalization, safety
from zoo.data.base import clip_words
from zoo.provenance import sha256_file, sha256_tree

FEATURE_KEYS = ("feature_vector", "default", "pre_logits", "final_avg_pool")
SIGNATURE_ORDER = ("feature_vector", "default", "serving_default")
URL_PREFIXES = ("http://", "https://", "gs://")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
# TF-Hub's image convention, and what zoo-export writes.
DEFAULT_VALUE_RANGE = (0.0, 1.0)
# The size used when a module declares none (the paper's and TF-Hub's usual).
DEFAULT_IMAGE_SIZE = 224
PROBE_BATCH = 4
ENDPOINT_PREFIX = "endpoint:"
INPUT_DTYPES = ("float32", "float16", "bfloat16", "float64", "uint8", "int32")
FORMATS = ("saved_model", "authors_release", "keras")
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")  # keras_files.SUFFIXES
# The authors' release: serving_default(image) returns these (and block outputs).
AUTHORS_INPUT = "image"
AUTHORS_OUTPUTS = ("final_avg_pool", "outputs")
AUTHORS_FEATURES = "final_avg_pool"
AUTHORS_CLASSES = 1001  # ImageNet's 1000 and an unused background class 0


class ModuleError(ValueError):
    """A module that cannot be benchmarked; the message says why and the fix."""


@dataclasses.dataclass
class Module:
    """A loaded image module and its input contract.

    Args:
      handle: what the user passed.
      path: the local SavedModel directory.
      sha256: content hash of that directory.
      metadata: the module's metadata.json (empty if it has none).
      obj: the loaded SavedModel (shared by read-only users).
      signature: the function used for features: "__call__" or a signature;
        None for a classifier-only module (its `logits` signature and nothing
        else), which the feature evaluators skip.
      output: the dict key of the features, or None for a tensor output.
      image_size: the side images are resized and cropped to.
      size_source: where image_size came from: "override", "metadata",
        "signature" or "default".
      input_dtype: the dtype the function takes ("float32", "uint8", ...).
      value_range: (low, high) a linear normalisation maps [0, 1] onto;
        None for imagenet_mean_std.
      feature_dim: length of the feature vector.
      normalization: the input normalisation's name (export/normalization.py).
      normalization_source: where it came from: "override", "metadata", the
        convention that says so, "input dtype" or "default".
      format: the module's convention (FORMATS).
    """

    handle: str
    path: str
    sha256: str
    metadata: dict
    obj: object
    signature: str | None
    output: str | None
    image_size: int
    size_source: str
    input_dtype: str
    value_range: tuple | None
    feature_dim: int = 0
    normalization: str = normalization.DEFAULT
    normalization_source: str = "default"
    format: str = "saved_model"

    def prepare(self, images):
        """Returns float images in [0, 1] as the module's input: normalised
        (`normalization`), then rounded and cast for integer dtypes."""
        return normalization.apply(
            images, self.normalization, self.value_range, self.input_dtype
        )

    def __call__(self, images):
        """Returns the features of float images in [0, 1]."""
        return self.features(images)

    def features(self, images):
        """Returns the [batch, d] features of float images in [0, 1]."""
        outputs = self._call(self.prepare(images))
        return squeeze_spatial(select_output(outputs, self.output, self))

    @property
    def has_features(self):
        """Returns whether the module has a feature-vector function."""
        return self.signature is not None

    def _call(self, inputs):
        """Returns the raw output of the chosen function on prepared inputs."""
        if self.signature is None:
            raise ModuleError(
                f"{self.handle} has no feature-vector function (only 'logits'); "
                "pass --signature naming one"
            )
        if self.signature == "__call__":
            return self.obj(inputs)
        fn = self.obj.signatures[self.signature]
        (arg,) = list(fn.structured_input_signature[1])
        return fn(**{arg: inputs})

    @property
    def has_logits(self):
        """Returns whether the module has a `logits` signature (its classifier)."""
        return "logits" in getattr(self.obj, "signatures", {})

    def logits(self, images):
        """Returns float32 logits of float images in [0, 1] from the `logits`
        signature; raises ModuleError when the module has none."""
        if not self.has_logits:
            raise ModuleError(
                f"{self.handle} has no 'logits' signature (it has "
                f"{', '.join(sorted(self.obj.signatures)) or 'none'}); this "
                "evaluation needs the module's classifier head"
            )
        fn = self.obj.signatures["logits"]
        (arg,) = list(fn.structured_input_signature[1])[:1]
        value = fn(**{arg: self.prepare(images)})
        if isinstance(value, dict):
            value = value["logits"] if "logits" in value else next(iter(value.values()))
        return tf.cast(value, tf.float32)

    def endpoint_names(self):
        """Returns the names of the module's `endpoints` signature outputs
        (every block of zoo and imported authors' modules; [] without one)."""
        fn = getattr(self.obj, "signatures", {}).get("endpoints")
        if fn is None:
            return []
        return sorted(fn.structured_outputs)

    def _endpoints(self, inputs):
        """Returns {name: tensor} of the endpoints of prepared inputs."""
        fn = self.obj.signatures["endpoints"]
        (arg,) = list(fn.structured_input_signature[1])[:1]
        return dict(fn(**{arg: inputs}))

    def endpoint(self, name, images):
        """Returns the [batch, d] float32 endpoint `name` of float images in
        [0, 1]; a spatial [batch, h, w, c] endpoint is averaged over h and w."""
        names = self.endpoint_names()
        if name not in names:
            raise ModuleError(
                f"{self.handle} has no endpoint '{name}' (it has "
                f"{', '.join(names) or 'no endpoints signature'})"
            )
        value = tf.cast(self._endpoints(self.prepare(images))[name], tf.float32)
        if value.shape.rank == 4:
            value = tf.reduce_mean(value, axis=[1, 2])
        return value

    def endpoint_outputs(self, images):
        """Returns {name: tensor} of every endpoint of float images in [0, 1],
        as the module returns them (spatial ones [batch, h, w, c]), from one
        call; {} for a module without an `endpoints` signature."""
        if not self.endpoint_names():
            return {}
        return self._endpoints(self.prepare(images))

    def outputs(self, name):
        """Returns images -> [batch, d] of the named output: "features" (the
        module's feature vector), "logits", or "endpoint:NAME" (see
        `endpoint`)."""
        if name == "features":
            return self.features
        if name == "logits":
            return self.logits
        if isinstance(name, str) and name.startswith(ENDPOINT_PREFIX):
            endpoint = name[len(ENDPOINT_PREFIX) :]
            return lambda images: self.endpoint(endpoint, images)
        raise ValueError(
            f"unknown module output '{name}'; use features, logits or "
            f"{ENDPOINT_PREFIX}NAME"
        )

    def fine_tuning_problem(self):
        """Returns why the module cannot be fine-tuned, or None if it can: it
        needs trainable variables and a `__call__(images, training=...)`."""
        if not list(getattr(self.obj, "trainable_variables", None) or []):
            return "it exposes no trainable_variables"
        if not callable(self.obj) or not _accepts_training(self.obj):
            return "its __call__ takes no `training` argument"
        return None

    def load(self):
        """Returns a fresh tf.saved_model.load of the module (new variables)."""
        try:
            return tf.saved_model.load(self.path)
        except Exception as e:  # noqa: BLE001 - report any load failure as one line
            raise ModuleError(f"cannot load {self.handle}: {_first_line(e)}") from None

    def contract(self):
        """Returns the input contract as a JSON-serialisable dict."""
        return {
            "format": self.format,
            "signature": self.signature,
            "output": self.output,
            "image_size": self.image_size,
            "size_source": self.size_source,
            "input_dtype": self.input_dtype,
            "input_normalization": self.normalization,
            "normalization_source": self.normalization_source,
            "value_range": value_range_list(self.value_range),
            "feature_dim": self.feature_dim,
        }


class AuthorsModule(Module):
    """A module in the authors' release format (see the module docstring):
    their `serving_default` gives features, logits and endpoints."""

    def _serve(self, inputs):
        fn = self.obj.signatures["serving_default"]
        return dict(fn(**{AUTHORS_INPUT: inputs}))

    @property
    def has_logits(self):
        return True

    def logits(self, images):
        """Returns `outputs` without the background class: 1000 classes."""
        return _without_background(self._serve(self.prepare(images))["outputs"])

    def endpoint_names(self):
        fn = self.obj.signatures["serving_default"]
        return sorted({*fn.structured_outputs, "logits"})

    def _endpoints(self, inputs):
        outputs = self._serve(inputs)
        outputs["logits"] = _without_background(outputs["outputs"])
        return outputs


def _without_background(logits):
    """Returns float32 logits without class 0 when there are 1001 of them."""
    logits = tf.cast(logits, tf.float32)
    if logits.shape[-1] == AUTHORS_CLASSES:
        logits = logits[:, 1:]
    return logits


def is_authors_release(obj):
    """Returns whether a loaded SavedModel is in the authors' release format."""
    fn = getattr(obj, "signatures", {}).get("serving_default")
    if fn is None:
        return False
    inputs = list(fn.structured_input_signature[1])
    outputs = fn.structured_outputs
    return (
        inputs == [AUTHORS_INPUT]
        and isinstance(outputs, dict)
        and all(k in outputs for k in AUTHORS_OUTPUTS)
    )


def squeeze_spatial(features):
    """Returns [batch, C] for features whose dimensions between batch and
    channels are all 1 ([batch, 1, 1, C]); anything else as it is."""
    if not isinstance(features, tf.Tensor) or features.shape.rank is None:
        return features
    middle = features.shape[1:-1]
    if features.shape.rank > 2 and all(d == 1 for d in middle):
        return tf.reshape(features, [-1, features.shape[-1]])
    return features


def value_range_list(value_range):
    """Returns a value range as a JSON list of floats (None stays None)."""
    return None if value_range is None else [float(v) for v in value_range]


def resolve_handle(handle):
    """Returns the local SavedModel directory of `handle` after the op-safety
    scan (see module docstring); raises ModuleError if there is none or the
    module holds a refused op.

    Order: `export.catalog.resolve_catalog_handle` (catalog names and local
    archives), then a Kaggle Models handle (`kaggle:OWNER/MODEL/tensorFlow2/
    VARIATION/VERSION` or a kaggle.com/models URL, `export.fetch.kaggle_url`),
    then a URL, then a local directory. Nothing from the module has run when
    this returns.
    """
    path = _local_directory(handle)
    check_module_safety(path, handle)
    return path


def _local_directory(handle):
    """Returns the local directory `handle` names, fetched or unpacked."""
    if not isinstance(handle, str) or not handle:
        raise ModuleError("empty module handle; pass --module=PATH_OR_URL")
    resolved = _resolve_in_catalog(handle)
    if resolved:
        return os.fspath(resolved)
    from export import fetch

    if fetch.is_kaggle_handle(handle):
        try:
            return _fetch(fetch.kaggle_url(handle))
        except fetch.FetchError as e:
            raise ModuleError(str(e)) from None
    if handle.startswith(URL_PREFIXES):
        return _fetch(handle)
    path = os.path.abspath(os.path.expanduser(handle))
    if not os.path.exists(path):
        raise ModuleError(
            f"module {handle} not found; pass a SavedModel directory, a .keras or "
            ".h5 file, a .tar.gz archive, an http(s)/gs:// URL or a catalog name"
        )
    if os.path.isfile(path) and path.endswith(KERAS_SUFFIXES):
        return path
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ModuleError(
            f"{handle} is not a SavedModel (no saved_model.pb) nor a Keras file "
            "(.keras, .h5); pass the directory written by zoo-export or "
            "tf.saved_model.save, or a file written by keras.Model.save"
        )
    return path


def _fetch(url):
    """Returns the local directory of a module URL: archives and http(s)
    handles through export.fetch (bounded, timed, verified on every use), a
    gs:// folder through tensorflow_hub."""
    from export import fetch
    from export.archive import ArchiveError
    from export.catalog import tfhub_cache_dir

    if url.startswith("gs://") and not url.endswith(ARCHIVE_SUFFIXES):
        import tensorflow_hub as hub

        try:
            return hub.resolve(url)
        except Exception as e:  # noqa: BLE001 - classified below, one line each
            raise ModuleError(
                f"cannot fetch {url}: {describe_fetch_error(e)}"
            ) from None
    report = lambda line: print(f"[module] {line}", flush=True)  # noqa: E731
    try:
        return fetch.fetch_module(url, tfhub_cache_dir(), report=report)
    except (fetch.FetchError, ArchiveError) as e:
        raise ModuleError(str(e)) from None


def describe_fetch_error(error):
    """Returns one line saying why a download failed: the HTTP status when the
    server answered, else the network error, else the exception's first line."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, urllib.error.HTTPError):
            return (
                f"the server answered HTTP {error.code} {error.reason}; check the "
                "URL, or pass a local module directory"
            )
        if isinstance(error, urllib.error.URLError):
            return (
                f"no connection ({error.reason}); without network, pass a local "
                "module directory or set TFHUB_CACHE_DIR to a cache that holds it"
            )
        error = error.__cause__ or error.__context__
    return "the download failed; pass a local module directory instead"


def _resolve_in_catalog(handle):
    """Returns export.catalog's directory for `handle`, or None when it is not
    a catalog name or handle nor a local archive."""
    from export.catalog import CatalogError, resolve_catalog_handle

    try:
        return resolve_catalog_handle(handle)
    except CatalogError as e:
        raise ModuleError(str(e)) from None


def check_module_safety(path, handle):
    """Raises ModuleError unless `export.safety.check_module` passes the
    module folder: regular files and folders only, no refused op, within
    the scan's bounds (a Keras file: `keras_files.scan`). Nothing from the
    module runs."""
    if os.path.isfile(path):
        from benchmark.modules import keras_files

        try:
            return keras_files.scan(path)
        except keras_files.KerasFileError as e:
            raise ModuleError(f"refusing {handle}: {e}") from None
    try:
        safety.check_module(path)
    except safety.UnsafeModuleError as e:
        raise ModuleError(f"refusing {handle}: {e}") from None
    except (OSError, ValueError) as e:
        raise ModuleError(f"cannot read {handle} as a SavedModel: {e}") from None


def parse_value_range(value):
    """Returns (low, high) floats from "low,high" or a pair; None stays None
    (export.normalization.parse_value_range, failing as ModuleError)."""
    try:
        return normalization.parse_value_range(value)
    except normalization.NormalizationError as e:
        raise ModuleError(str(e)) from None


def select_output(outputs, key, module):
    """Returns the feature tensor among a function's outputs.

    `key` names a dict entry (the `output` override); without it a dict gives
    its first FEATURE_KEYS entry, or its only entry.
    """
    handle = module.handle if module is not None else "the module"
    if not isinstance(outputs, dict):
        if key:
            raise ModuleError(
                f"{handle} returns a single tensor, not a dict; drop --output={key}"
            )
        return outputs
    if key:
        if key not in outputs:
            raise ModuleError(
                f"{handle} has no output '{key}'; pass --output naming one of "
                f"{', '.join(sorted(outputs))}"
            )
        return outputs[key]
    return outputs[_default_output_key(outputs, handle)]


def _default_output_key(outputs, handle):
    """Returns the dict key used when no output is named."""
    for key in FEATURE_KEYS:
        if key in outputs:
            return key
    if len(outputs) == 1:
        return next(iter(outputs))
    shapes = ", ".join(
        f"{k} {getattr(v, 'shape', None) and list(v.shape)}"
        for k, v in sorted(outputs.items())
    )
    raise ModuleError(
        f"{handle} returns several outputs that could be the features ({shapes}) "
        f"and none is a known feature vector ({', '.join(FEATURE_KEYS)}); pass "
        "--output=NAME naming the pooled [batch, features] one"
    )


def _choose_function(obj, signature, handle):
    """Returns (function name, input TensorSpec or None) of the features."""
    signatures = getattr(obj, "signatures", {})
    if signature and signature != "__call__":
        if signature not in signatures:
            raise ModuleError(
                f"{handle} has no signature '{signature}'; it has "
                f"{', '.join(sorted(signatures)) or 'none'}"
            )
        return signature, _signature_input(signatures[signature], signature, handle)
    if callable(obj):
        return "__call__", _call_input(obj)
    if signature == "__call__":
        raise ModuleError(f"{handle} has no __call__; pass --signature=NAME")
    for name in SIGNATURE_ORDER:
        if name in signatures:
            return name, _signature_input(signatures[name], name, handle)
    if "logits" in signatures and not signature:  # A classifier only.
        return None, _signature_input(signatures["logits"], "logits", handle)
    raise ModuleError(
        f"{handle} has no usable function (no __call__ and no "
        f"{', '.join(SIGNATURE_ORDER)} signature; it has "
        f"{', '.join(sorted(signatures)) or 'none'}); pass --signature=NAME"
    )


def _signature_input(fn, name, handle):
    """Returns the TensorSpec of a single-input signature."""
    inputs = fn.structured_input_signature[1]
    if len(inputs) != 1:
        raise ModuleError(
            f"{handle}: signature '{name}' takes {len(inputs)} inputs "
            f"({', '.join(inputs) or 'none'}), not one image batch; pass "
            "--signature naming a single-input image signature"
        )
    return next(iter(inputs.values()))


def _call_input(obj):
    """Returns the image TensorSpec of `__call__`'s first traced concrete
    function (a rank-4 positional input), or None when it has none."""
    call = getattr(obj, "__call__", None)
    for concrete in getattr(call, "concrete_functions", None) or []:
        args, kwargs = concrete.structured_input_signature
        for spec in tf.nest.flatten((args, kwargs)):
            if isinstance(spec, tf.TensorSpec) and spec.shape.rank == 4:
                return spec
    return None


def _declared_size(spec):
    """Returns the square size of an image TensorSpec, or None."""
    if spec is None or spec.shape.rank != 4:
        return None
    height, width = spec.shape[1], spec.shape[2]
    if height and height == width:
        return int(height)
    return None


def _accepts_training(obj):
    """Returns whether the module's __call__ takes a `training` argument."""
    spec = getattr(getattr(obj, "__call__", None), "function_spec", None)
    if spec is None:
        return False
    args = spec.fullargspec
    return "training" in list(args.args) + list(args.kwonlyargs)


def _check_size(value, what):
    """Returns a positive int size, or raises ModuleError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ModuleError(f"{what} must be a positive integer, got {value!r}")
    if value < 1:
        raise ModuleError(f"{what} must be a positive integer, got {value}")
    return int(value)


def load_module(
    handle,
    image_size=None,
    signature=None,
    value_range=None,
    output=None,
    input_normalization=None,
):
    """Returns the Module of `handle`, checked by one forward pass.

    `image_size`, `signature`, `value_range` ((low, high) or "low,high"),
    `input_normalization` (a name of export/normalization.py) and `output`
    (a dict key) override what the module declares. The op-safety scan (in
    `resolve_handle`) runs before the module is loaded.
    """
    if value_range is not None and input_normalization is not None:
        raise ModuleError(
            "pass --input_normalization or --value_range, not both (a value "
            "range is a linear normalisation)"
        )
    if input_normalization is not None:
        _check_normalization(input_normalization)
    path = resolve_handle(handle)
    if os.path.isfile(path):
        return _load_keras_file(
            handle, path, image_size, signature, value_range, output,
            input_normalization,
        )  # fmt: skip
    metadata = _read_metadata(path, handle)
    try:
        obj = tf.saved_model.load(path)
    except Exception as e:  # noqa: BLE001 - report any load failure as one line
        raise ModuleError(
            f"cannot load {handle} as a SavedModel: {_first_line(e)}"
        ) from None
    authors = not signature and is_authors_release(obj)
    if authors:
        signature, output = "serving_default", output or AUTHORS_FEATURES
    name, spec = _choose_function(obj, signature, handle)
    size, source = _image_size(handle, image_size, metadata, _declared_size(spec))
    dtype = spec.dtype.name if spec is not None else "float32"
    detected = ("imagenet_mean_std", "authors' release format") if authors else None
    if authors and not metadata:
        metadata = authors_metadata(path)
    module = (AuthorsModule if authors else Module)(
        handle=handle,
        path=path,
        sha256=module_sha256(path),
        metadata=metadata,
        obj=obj,
        signature=name,
        output=output or None,
        image_size=size,
        size_source=source,
        input_dtype=_check_dtype(dtype, handle),
        value_range=None,
        format="authors_release" if authors else "saved_model",
    )
    _set_normalization(module, input_normalization, value_range, metadata, detected)
    probe = _probe(module)
    if module.has_features:
        module.feature_dim = int(probe.shape[-1])
    return module


def authors_metadata(path):
    """Returns what an authors' release folder says about itself: ResNet-50
    on ImageNet, and the loss and seed when the folder is laid out as their
    bucket is (LOSS/seedN)."""
    from export.importer import AUTHORS_LOSSES

    folder = os.path.basename(os.path.normpath(path))
    parent = os.path.basename(os.path.dirname(os.path.normpath(path)))
    metadata = {"arch": "resnet50", "dataset": "imagenet2012"}
    if parent in AUTHORS_LOSSES:
        metadata["objective"] = parent
    if folder.startswith("seed") and folder[4:].isdigit():
        metadata["seed"] = int(folder[4:])
    return metadata


def module_sha256(path):
    """Returns the content hash of a module: its folder's tree hash, or a
    Keras file's sha256."""
    return sha256_file(path) if os.path.isfile(path) else sha256_tree(path)


def _load_keras_file(
    handle, path, image_size, signature, value_range, output, input_normalization
):
    """Returns the KerasModule of a scanned .keras / .h5 file."""
    from benchmark.modules import keras_files

    if signature or output:
        raise ModuleError(
            f"{handle} is a Keras file: it has no signatures or named outputs; "
            "drop --signature and --output (the penultimate layer is the features)"
        )
    model = keras_files.load(path, handle)
    declared = keras_files.input_size(model)
    size, source = _image_size(handle, image_size, {}, declared)
    module = keras_files.KerasModule(
        handle=handle,
        path=path,
        sha256=module_sha256(path),
        metadata={"arch": model.name} if model.name else {},
        obj=model,
        signature="__call__",
        output=None,
        image_size=size,
        size_source=source,
        input_dtype=_check_dtype(keras_files.input_dtype(model), handle),
        value_range=None,
        format="keras",
    )
    _set_normalization(
        module, input_normalization, value_range, {}, keras_files.detected(model)
    )
    probe = _probe(module)
    module.feature_dim = int(probe.shape[-1])
    return module


def _image_size(handle, override, metadata, declared):
    """Returns (size, source) of a module's input size (module docstring)."""
    if override is not None:
        return _check_size(override, "--image_size"), "override"
    if metadata.get("image_size"):
        size = _check_size(metadata["image_size"], f"{handle} metadata image_size")
        return size, "metadata"
    if declared:
        return declared, "signature"
    return DEFAULT_IMAGE_SIZE, "default"


def _check_dtype(dtype, handle):
    if dtype not in INPUT_DTYPES:
        raise ModuleError(
            f"{handle} takes {dtype} images; supported: {', '.join(INPUT_DTYPES)}"
        )
    return dtype


def _check_normalization(name):
    try:
        return normalization.check(name)
    except normalization.NormalizationError as e:
        raise ModuleError(str(e)) from None


def _set_normalization(module, name, value_range, metadata, detected):
    """Sets module.normalization, value_range and normalization_source:
    the override (a name or a range), else the metadata's
    `input_normalization` or `value_range`, else `detected` ((name, source)
    of the module's convention), else by input dtype."""
    integer = tf.as_dtype(module.input_dtype).is_integer
    if name is not None:
        source = "override"
    elif value_range is not None:
        source = "override"
    elif metadata.get("input_normalization"):
        name, source = metadata["input_normalization"], "metadata"
        _check_normalization(name)
    elif metadata.get("value_range"):
        value_range, source = metadata["value_range"], "metadata"
    elif detected:
        name, source = detected
    else:
        name = "uint8" if integer else normalization.DEFAULT
        source = "input dtype" if integer else "default"
    if name is None:
        low, high = parse_value_range(value_range)
        name = normalization.name_of_range(low, high)
        if name == "0_255" and integer:
            name = "uint8"
        module.value_range = (low, high)
    else:
        module.value_range = normalization.NORMALIZATIONS[name]
    module.normalization, module.normalization_source = name, source


def _read_metadata(path, handle):
    """Returns the module's metadata.json as a dict ({} if it has none)."""
    meta_path = os.path.join(path, "metadata.json")
    if not os.path.isfile(meta_path):
        return {}
    try:
        with open(meta_path) as f:
            metadata = json.load(f)
    except json.JSONDecodeError as e:
        raise ModuleError(f"{handle}: metadata.json is not valid JSON ({e})") from None
    return metadata if isinstance(metadata, dict) else {}


def _probe(module):
    """Returns the features of PROBE_BATCH random images, after checking them."""
    size = module.image_size
    images = tf.random.stateless_uniform([PROBE_BATCH, size, size, 3], seed=[1, 2])
    fn = module.features if module.has_features else module.logits
    try:
        features = fn(images)
    except ModuleError:
        raise
    except (TypeError, ValueError, tf.errors.OpError) as e:
        hint = (
            "; it declares no input size, so pass --image_size"
            if module.size_source == "default"
            else "; check --image_size, --signature and --input_normalization"
        )
        raise ModuleError(
            f"{module.handle} fails on a {module.input_dtype} [{PROBE_BATCH}, {size}, "
            f"{size}, 3] batch normalised {module.normalization}: "
            f"{clip_words(' '.join(str(e).split()))}{hint}"
        ) from None
    return check_features(
        features,
        module.handle,
        f"a probe batch of {PROBE_BATCH} images",
        allow_constant=not module.has_features,
    )


def check_feature_type(features, handle):
    """Returns `features` as a tensor; raises ModuleError unless it is a float
    [batch, d] tensor."""
    features = tf.convert_to_tensor(features)
    if features.shape.rank != 2:
        raise ModuleError(
            f"{handle} returns features of shape {features.shape.as_list()}, not "
            "[batch, features]; pass --output (or --signature) naming a pooled "
            "feature-vector output"
        )
    if not features.dtype.is_floating:
        raise ModuleError(
            f"{handle} returns {features.dtype.name} features, not float; pass "
            "--output (or --signature) naming a float feature-vector output"
        )
    return features


def check_features(features, handle, where="a batch", allow_constant=False):
    """Returns `features` as a numpy array after checking it is usable.

    Raises ModuleError unless it is a float [batch, d] array, finite, and (for
    2 or more images, unless `allow_constant`: logits of a degenerate
    classifier are a result, not a broken module) not the same vector for
    every image.
    """
    values = np.asarray(check_feature_type(features, handle))
    if not np.all(np.isfinite(values)):
        raise ModuleError(f"{handle} returns NaN or infinite features on {where}")
    if not allow_constant and len(values) > 1 and np.all(values == values[:1]):
        raise ModuleError(
            f"{handle} returns the same features for every image of {where} "
            "(constant features); check --input_normalization, --signature and "
            "--output"
        )
    return values


def _first_line(error):
    """Returns the first line of an exception's message, or its type name."""
    text = str(error).strip()
    return clip_words(text.splitlines()[0]) if text else type(error).__name__
