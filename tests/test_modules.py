"""Module loading: handles, the op-safety scan, the input contract and the
checks on a module's output, on real SavedModels written by tf.saved_model."""

import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from benchmark.modules import loading as modules
from benchmark.modules.loading import ModuleError
from export import safety
from zoo.provenance import sha256_tree

IMAGES = tf.TensorSpec([None, None, None, 3], tf.float32)
IMAGE_SIZE = 8
FEATURE_DIM = 4


def _features(images, w):
    """Returns the good module's features: per-channel means times w [3, 4]."""
    return tf.reduce_mean(images, axis=[1, 2]) @ w


def _read_file(path):
    def body(images, w):
        data = tf.io.read_file(path)
        return _features(images, w) + 0.0 * tf.cast(tf.strings.length(data), tf.float32)

    return body


def _write_file(path):
    def body(images, w):
        with tf.control_dependencies([tf.io.write_file(path, "written")]):
            return _features(images, w)

    return body


def _py_function(images, w):
    return tf.py_function(lambda x: x, [_features(images, w)], tf.float32)


def _save_v2(path):
    def body(images, w):
        save = tf.raw_ops.SaveV2(
            prefix=path, tensor_names=["w"], shape_and_slices=[""], tensors=[w]
        )
        with tf.control_dependencies([save]):
            return _features(images, w)

    return body


def _print_to(stream):
    def body(images, w):
        features = _features(images, w)
        with tf.control_dependencies([tf.print(features, output_stream=stream)]):
            return tf.identity(features)

    return body


def _read_file_in_branch(path):
    """ReadFile inside a tf.cond branch: a function reached through If."""

    def body(images, w):
        features = _features(images, w)
        return tf.cond(
            tf.reduce_sum(features) > 1e9,
            lambda: (
                features + tf.cast(tf.strings.length(tf.io.read_file(path)), tf.float32)
            ),
            lambda: features,
        )

    return body


BODIES = {
    "good": _features,
    "rank4": lambda images, w: images * w[0, 0],
    "nan": lambda images, w: _features(images, w) * float("nan"),
    "constant": lambda images, w: tf.zeros([tf.shape(images)[0], 4]) + w[0, 0],
    "int": lambda images, w: tf.cast(100.0 * _features(images, w), tf.int32),
    "py_function": _py_function,
    "stderr_print": _print_to(sys.stderr),
}


def save_module(path, body=_features, *, call=True, signature=False, metadata=True):
    """Writes a SavedModel with one [3, 4] variable to `path` and returns path.

    Args:
      body: (images, w) -> outputs, traced as `__call__` and/or a signature.
      call: save the function as `__call__`.
      signature: also save it as the `serving_default` signature, with a
        static [None, 8, 8, 3] input.
      metadata: write metadata.json with image_size 8.
    """
    module = tf.Module()
    module.w = tf.Variable(tf.reshape(tf.linspace(0.5, 2.0, 12), [3, 4]))
    signatures = None
    if call:
        module.__call__ = tf.function(
            lambda images: body(images, module.w), input_signature=[IMAGES]
        )
    if signature:
        spec = tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32)
        fn = tf.function(lambda images: {"feature_vector": body(images, module.w)})
        signatures = {"serving_default": fn.get_concrete_function(spec)}
    tf.saved_model.save(module, str(path), signatures=signatures)
    if metadata:
        (path / "metadata.json").write_text(json.dumps({"image_size": IMAGE_SIZE}))
    return path


def build_module_zoo(root):
    """Writes good, broken and unsafe modules under `root` and returns {name:
    SavedModel dir}, plus under "targets" {name: the file an unsafe module
    would read or write}."""
    targets = {name: str(root / f"{name}.target") for name in ("read", "write")}
    (root / "read.target").write_text("secret")
    bodies = dict(
        BODIES,
        read_file=_read_file(targets["read"]),
        write_file=_write_file(targets["write"]),
        save_v2=_save_v2(str(root / "ckpt")),
        file_print=_print_to(f"file://{root / 'printed.txt'}"),
        read_file_in_branch=_read_file_in_branch(targets["read"]),
    )
    zoo = {name: str(save_module(root / name, body)) for name, body in bodies.items()}
    zoo["no_signature"] = str(save_module(root / "no_signature", call=False))
    zoo["signature_only"] = str(
        save_module(root / "signature_only", call=False, signature=True, metadata=False)
    )
    zoo["targets"] = targets
    return zoo


@pytest.fixture(scope="session")
def module_zoo(tmp_path_factory):
    """Returns build_module_zoo's modules, written once per session."""
    return build_module_zoo(tmp_path_factory.mktemp("module_zoo"))


# ------------------------------------------------------------------ safety


@pytest.mark.parametrize(
    "name, op",
    [
        ("read_file", "ReadFile"),
        ("write_file", "WriteFile"),
        ("py_function", "EagerPyFunc"),
        ("save_v2", "SaveV2"),
        ("file_print", "PrintV2"),
        ("read_file_in_branch", "ReadFile"),
    ],
)
def test_unsafe_modules_are_refused_before_anything_runs(module_zoo, name, op):
    findings = safety.unsafe_ops(module_zoo[name])
    assert [f.op for f in findings] == [op]
    with pytest.raises(ModuleError, match=f"refusing .* contains op {op} ") as error:
        modules.load_module(module_zoo[name])
    assert "\n" not in str(error.value)
    with open(module_zoo["targets"]["read"]) as f:
        assert f.read() == "secret"
    assert not os.path.exists(module_zoo["targets"]["write"])


def test_checkpoint_ops_are_allowed_only_in_the_saver(module_zoo):
    # Every SavedModel restores its variables with RestoreV2 and saves them
    # with SaveV2 + MergeV2Checkpoints in the saver's own functions.
    proto = safety.saved_model_pb2.SavedModel()
    with open(f"{module_zoo['good']}/saved_model.pb", "rb") as f:
        proto.ParseFromString(f.read())
    ops = {
        node.op
        for function in proto.meta_graphs[0].graph_def.library.function
        for node in function.node_def
    }
    assert {"SaveV2", "RestoreV2", "MergeV2Checkpoints"} <= ops
    assert safety.unsafe_ops(module_zoo["good"]) == []
    assert safety.unsafe_ops(module_zoo["stderr_print"]) == []  # tf.print: fine.


@pytest.mark.slow  # The exported_module fixture trains a model first.
def test_an_exported_zoo_module_passes_the_scan(exported_module):
    path, _ = exported_module
    assert safety.unsafe_ops(path) == []
    module = modules.load_module(path)
    assert module.contract()["signature"] == "__call__"


def test_denylist_names_the_op_families():
    for op in ("ReadFile", "WriteFile", "MatchingFiles", "PyFunc", "EagerPyFunc"):
        assert op in safety.DENIED_OPS
    assert safety.DENIED_OPS["DebugIdentity"] == safety.DEBUG
    assert safety.DENIED_OPS["RpcCall"] == safety.NETWORK
    assert "SaveV2" in safety.CHECKPOINT_OPS and "SaveV2" not in safety.DENIED_OPS


# ----------------------------------------------------------------- handles


def test_handles_that_are_not_modules_give_one_line_errors(tmp_path):
    with pytest.raises(ModuleError, match="not found"):
        modules.resolve_handle(str(tmp_path / "missing"))
    with pytest.raises(ModuleError, match="not a SavedModel"):
        modules.resolve_handle(str(tmp_path))
    with pytest.raises(ModuleError, match="empty module handle"):
        modules.resolve_handle("")


def test_the_catalog_is_asked_before_the_local_directory(
    module_zoo, tmp_path, monkeypatch
):
    from export.archive import pack_module

    entries = []
    for name, key in (("zoo/softmax", "good"), ("zoo/evil", "read_file")):
        archive = tmp_path / f"{key}.tar.gz"
        sha = pack_module(module_zoo[key], archive)
        entries.append(
            {
                "name": name,
                "source": "zoo",
                "arch": "resnet50",
                "objective": "softmax",
                "seed": 0,
                "handle": str(archive),
                "sha256": sha,
                "size": archive.stat().st_size,
                "accuracy": 0.5,
            }
        )
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"catalog_version": 1, "entries": entries}))
    monkeypatch.setenv("ZOO_CATALOG", str(catalog))
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub"))
    path = modules.resolve_handle("zoo/softmax")
    assert path.startswith(str(tmp_path / "hub"))
    assert sha256_tree(path) == sha256_tree(module_zoo["good"])
    assert modules.resolve_handle(module_zoo["good"]) == module_zoo["good"]
    # What the catalog resolves is scanned like any other module.
    with pytest.raises(ModuleError, match="ReadFile"):
        modules.resolve_handle("zoo/evil")


# ---------------------------------------------------------------- contract


def test_contract_is_discovered_and_overridable(module_zoo):
    module = modules.load_module(module_zoo["good"])
    assert module.contract() == {
        "format": "saved_model",
        "signature": "__call__",
        "output": None,
        "image_size": IMAGE_SIZE,
        "size_source": "metadata",
        "input_dtype": "float32",
        "input_normalization": "unit",
        "normalization_source": "default",
        "value_range": [0.0, 1.0],
        "feature_dim": FEATURE_DIM,
    }
    # The signature's static input shape gives the size when metadata has none.
    signed = modules.load_module(module_zoo["signature_only"])
    assert (signed.signature, signed.image_size) == ("serving_default", IMAGE_SIZE)
    assert signed.size_source == "signature"
    resized = modules.load_module(
        module_zoo["good"], image_size=16, value_range="0,255"
    )
    assert resized.contract()["image_size"] == 16
    assert resized.contract()["size_source"] == "override"
    assert resized.contract()["value_range"] == [0.0, 255.0]
    assert resized.contract()["input_normalization"] == "0_255"
    assert resized.contract()["normalization_source"] == "override"


def test_value_range_rescales_images_before_the_call(module_zoo):
    images = tf.random.stateless_uniform([3, 8, 8, 3], seed=[0, 1])
    unit = modules.load_module(module_zoo["good"])
    for value_range, (low, high) in [("0,255", (0, 255)), ((-1, 1), (-1, 1))]:
        module = modules.load_module(module_zoo["good"], value_range=value_range)
        expected = unit(low + (high - low) * images)
        np.testing.assert_allclose(module(images), expected, rtol=1e-6)


@pytest.mark.parametrize("text", ["0", "a,b", "1,0", "0,1,2"])
def test_bad_value_ranges_are_refused(text):
    with pytest.raises(ModuleError, match="value range"):
        modules.parse_value_range(text)


@pytest.mark.parametrize(
    "name, message",
    [
        ("rank4", r"shape \[4, 8, 8, 3\], not \[batch, features\]"),
        ("nan", "NaN or infinite features"),
        ("constant", "same features for every image"),
        ("int", "int32 features, not float"),
        ("no_signature", "no usable function"),
    ],
)
def test_broken_modules_fail_at_load_with_one_line(module_zoo, name, message):
    with pytest.raises(ModuleError, match=message) as error:
        modules.load_module(module_zoo[name])
    assert "\n" not in str(error.value)


def test_check_features_on_hand_made_arrays():
    good = np.array([[1.0, 2.0], [1.0, 3.0]], np.float32)
    np.testing.assert_array_equal(modules.check_features(good, "m"), good)
    # One column constant is fine; every row identical is not.
    with pytest.raises(ModuleError, match="same features"):
        modules.check_features(np.ones((3, 2), np.float32), "m")
    with pytest.raises(ModuleError, match="NaN"):
        modules.check_features(np.array([[np.inf, 1.0], [0.0, 1.0]]), "m")
    with pytest.raises(ModuleError, match="not float"):
        modules.check_features(np.array([[1, 2], [3, 4]]), "m")
    with pytest.raises(ModuleError, match="not \\[batch, features\\]"):
        modules.check_features(np.zeros(3, np.float32), "m")
    modules.check_features(np.ones((1, 2), np.float32), "m")  # One image.


@pytest.mark.parametrize("kind", ["symlink_to_dev_zero", "fifo", "dir_symlink"])
def test_links_and_special_files_are_refused_without_opening_them(tmp_path, kind):
    path = save_module(tmp_path / "m")
    if kind == "symlink_to_dev_zero":
        (path / "variables" / "extra.data").symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path / "assets.fifo")
    else:
        (path / "elsewhere").symlink_to(tmp_path)
    with pytest.raises(ModuleError, match="may hold only regular files") as error:
        modules.resolve_handle(str(path))  # Would hang if it opened the FIFO.
    assert "\n" not in str(error.value)
    from zoo.provenance import sha256_tree

    if kind == "fifo":
        with pytest.raises(ValueError, match="not a regular file"):
            sha256_tree(str(path))
    else:
        assert len(sha256_tree(str(path))) == 64  # Hashes the link, not its target.
