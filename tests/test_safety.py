"""The allowlist scan: real modules of every family pass, hostile modules
written here (without the project's export code) are refused before any of
their code runs, and a sentinel file proves nothing was read or written."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from benchmark.modules.loading import ModuleError, load_module
from export import safety

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = tf.TensorSpec([None, 8, 8, 3], tf.float32)


def _module(path, extra):
    """Saves a tf.Module whose __call__ returns mean colours plus
    0 * extra() (so the hostile op is in the traced function)."""
    module = tf.Module()

    @tf.function(input_signature=[SPEC])
    def call(images):
        return tf.reduce_mean(images, axis=[1, 2]) + 0.0 * tf.cast(extra(), tf.float32)

    module.__call__ = call
    tf.saved_model.save(module, str(path))
    return str(path)


def _after(op):
    """Returns a scalar that depends on `op` (an Operation in graph mode)."""
    with tf.control_dependencies([op]):
        return tf.constant(0)


def _hostile_ops(root):
    """Returns {name: (module dir, op expected in the finding)}."""
    sentinel = str(root / "sentinel")
    graph = tf.data.Dataset.range(3)._as_serialized_graph()
    cases = {
        "dataset_from_graph": (
            lambda: tf.raw_ops.DatasetCardinality(
                input_dataset=tf.raw_ops.DatasetFromGraph(graph_def=graph)
            ),
            "DatasetFromGraph",
        ),
        "matching_files_dataset": (
            lambda: tf.raw_ops.DatasetCardinality(
                input_dataset=tf.raw_ops.MatchingFilesDataset(patterns=[sentinel])
            ),
            "MatchingFilesDataset",
        ),
        "vocab_file_sampler": (
            lambda: tf.random.fixed_unigram_candidate_sampler(
                tf.constant([[0]], tf.int64), 1, 1, True, 2, vocab_file=sentinel
            )[0][0],
            "FixedUnigramCandidateSampler",
        ),
        "record_input": (
            lambda: tf.strings.length(
                tf.raw_ops.RecordInput(file_pattern=sentinel, batch_size=1)
            )[0],
            "RecordInput",
        ),
        "write_file": (lambda: _after(tf.io.write_file(sentinel, "x")), "WriteFile"),
        # Hung a run for 300 s listing a snapshot folder that never fills.
        "list_snapshot_chunks": (
            lambda: tf.raw_ops.DatasetCardinality(
                input_dataset=tf.raw_ops.ListSnapshotChunksDataset(
                    snapshot_path=sentinel, output_types=[tf.int64], output_shapes=[[]]
                )
            ),
            "ListSnapshotChunksDataset",
        ),
        # The tensor-dump family (tfdbg): writes every value under dump_root.
        "debug_dump": (
            lambda: tf.raw_ops.DebugIdentityV2(
                input=tf.constant(1.0), debug_urls=["file://" + sentinel]
            ),
            "DebugIdentityV2",
        ),
        "print_to_file": (
            lambda: _after(tf.print("x", output_stream="file://" + sentinel)),
            "PrintV2",
        ),
    }
    return {
        name: (_module(root / name, body), op) for name, (body, op) in cases.items()
    }


def _tf1_module(path, sentinel, attack):
    """Writes a TF1 SavedModel (Builder + Saver) whose restore path is
    tampered with: "save" wires a SaveV2 writing `sentinel`, "restore_other"
    a RestoreV2 of a constant path, "merge" a MergeV2Checkpoints that deletes
    folders. "none" is the honest module."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="image")
        w = tf.compat.v1.get_variable("w", initializer=tf.ones([3, 2]))
        out = tf.matmul(tf.reduce_mean(images, axis=[1, 2]), w)
        saver = tf.compat.v1.train.Saver()
        extra = None
        if attack == "save_v1":
            extra = tf.raw_ops.Save(filename=sentinel, tensor_names=["w"], data=[w])
        elif attack == "save":
            extra = tf.raw_ops.SaveV2(
                prefix=sentinel, tensor_names=["w"], shape_and_slices=[""], tensors=[w]
            )
        elif attack == "restore_other":
            extra = tf.raw_ops.RestoreV2(
                prefix=sentinel,
                tensor_names=["w"],
                shape_and_slices=[""],
                dtypes=[tf.float32],
            )[0].op
        elif attack == "merge":
            extra = tf.raw_ops.MergeV2Checkpoints(
                checkpoint_prefixes=[sentinel],
                destination_prefix=sentinel + "_m",
                delete_old_dirs=True,
            )
        if extra is not None:
            restore = graph.get_operation_by_name(saver.saver_def.restore_op_name)
            group = tf.group(restore, extra, name="tampered_restore")
            saver.saver_def.restore_op_name = group.name
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(path))
            signature = tf.compat.v1.saved_model.predict_signature_def(
                {"image": images}, {"default": out}
            )
            builder.add_meta_graph_and_variables(
                session, ["serve"], {"serving_default": signature}, saver=saver
            )
            builder.save()
    return str(path)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    return root, _hostile_ops(root)


@pytest.mark.parametrize(
    "name",
    [
        "dataset_from_graph",
        "matching_files_dataset",
        "vocab_file_sampler",
        "record_input",
        "write_file",
        "list_snapshot_chunks",
        "debug_dump",
        "print_to_file",
    ],
)
def test_ops_outside_the_allowlist_are_refused_before_loading(hostile, name):
    root, modules = hostile
    path, op = modules[name]
    findings = safety.unsafe_ops(path)
    assert op in {f.op for f in findings}
    with pytest.raises(ModuleError, match=f"refusing .*{op}") as error:
        load_module(path)
    assert "\n" not in str(error.value)
    assert not os.path.exists(root / "sentinel")


@pytest.mark.parametrize(
    "attack, message",
    [
        ("save", "checkpoint write in the restore path"),
        ("save_v1", "checkpoint write in the restore path"),
        ("restore_other", "another checkpoint than the module's own"),
        ("merge", "checkpoint write in the restore path"),
    ],
)
def test_a_tampered_tf1_restore_path_is_refused(tmp_path, attack, message):
    sentinel = str(tmp_path / "sentinel")
    path = _tf1_module(tmp_path / "m", sentinel, attack)
    with pytest.raises(ModuleError, match=message):
        load_module(path)
    assert not [p for p in os.listdir(tmp_path) if p.startswith("sentinel")]
    if attack in ("save", "save_v1"):  # The oracle: unscanned, loading writes.
        code = f"import tensorflow as tf; tf.saved_model.load({path!r})"
        subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)
        assert [p for p in os.listdir(tmp_path) if p.startswith("sentinel")]


def test_the_honest_tf1_module_passes(tmp_path):
    path = _tf1_module(tmp_path / "m", str(tmp_path / "unused"), "none")
    assert safety.unsafe_ops(path) == []
    module = load_module(path)
    assert module.signature == "serving_default" and module.feature_dim == 2


def test_a_tf2_restore_op_pointed_at_the_save_function_is_refused(tmp_path):
    module = tf.Module()
    module.v = tf.Variable(1.0)
    module.__call__ = tf.function(
        lambda images: tf.reduce_mean(images, axis=[1, 2]) * module.v,
        input_signature=[SPEC],
    )
    path = tmp_path / "m"
    tf.saved_model.save(module, str(path))
    assert safety.unsafe_ops(str(path)) == []
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    saver_def = proto.meta_graphs[0].saver_def
    save_node = saver_def.save_tensor_name.split(":")[0]
    saver_def.restore_op_name = save_node
    (path / "saved_model.pb").write_bytes(proto.SerializeToString())
    reasons = {f.reason for f in safety.unsafe_ops(str(path))}
    assert any("checkpoint write in the restore path" in r for r in reasons)
    with pytest.raises(ModuleError, match="refusing"):
        load_module(str(path))


@pytest.mark.slow  # Builds and exports several keras.applications networks.
def test_real_module_families_pass_the_allowlist(tmp_path, exported_module):
    import keras
    import tf_keras

    paths = {"zoo": exported_module[0]}
    for name, size in (("MobileNetV3Small", 64), ("EfficientNetB0", 64)):
        model = getattr(keras.applications, name)(
            weights=None, input_shape=(size, size, 3), include_top=False, pooling="avg"
        )
        paths[f"keras3_{name}"] = str(tmp_path / name)
        model.export(paths[f"keras3_{name}"], verbose=False)
    model = tf_keras.applications.MobileNetV2(
        weights=None, input_shape=(64, 64, 3), include_top=False, pooling="avg"
    )
    paths["tf_keras_MobileNetV2"] = str(tmp_path / "tfk")
    model.save(paths["tf_keras_MobileNetV2"], save_format="tf")
    for name, path in paths.items():
        assert safety.unsafe_ops(path) == [], name
        assert load_module(path).feature_dim > 0, name
