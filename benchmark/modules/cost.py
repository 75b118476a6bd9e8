"""What a module costs: the model metadata on every leaderboard row.

params            element count of the module's trainable variables (as
                  torchvision's and timm's counts: batch-norm moving
                  statistics excluded, the classifier head included when
                  the module carries one). ResNet-50 with 1,000 classes:
                  25,557,032.
feature_dim       length of the feature vector.
image_size        the input side the module was scored at, px.
gmacs             multiply-accumulates per image at that size, 1e9, counted
                  from the graph of the features function (the convention
                  of the published "4.1 GFLOPs" of ResNet-50 at 224 px):

                    Conv2D               out_h out_w c_out k_h k_w c_in
                    DepthwiseConv2d      out_h out_w c_out k_h k_w
                    Conv2DBackpropInput  in_h in_w c_in k_h k_w c_out
                    MatMul, BatchMatMul  batch m n k
                    Einsum               the product of every index's size

                  element-wise ops, pooling and normalisation are not
                  counted (they are a few percent of a convnet's).
module_mb         size of the module on disk, 1e6 bytes.
images_per_s      inference throughput of the features function on this
                  machine's device (the row's `device`), random images at
                  `throughput_batch`, after one warm-up batch: batches are
                  timed until THROUGHPUT_SECONDS have passed (at least
                  MIN_BATCHES).
"""

import os
import time

import numpy as np
import tensorflow as tf

THROUGHPUT_SECONDS = 1.0
MIN_BATCHES = 2
MAX_BATCHES = 20


def parameter_count(module):
    """Returns the element count of `module`'s trainable variables."""
    return int(sum(np.prod(v.shape) for v in _variables(module.obj) if v.trainable))


def _variables(obj):
    """Returns the variables of a loaded module: its `variables` attribute
    (zoo and imported modules, Keras models), else those its functions
    capture (a TF1 graph's signatures, a traced `__call__`)."""
    listed = getattr(obj, "variables", None)
    if isinstance(listed, (list, tuple)) and listed:
        return list(listed)
    functions = list(getattr(obj, "signatures", {}).values())
    call = getattr(obj, "__call__", None)
    functions += list(getattr(call, "concrete_functions", None) or [])
    seen, found = set(), []
    for fn in functions:
        for v in getattr(fn, "variables", ()) or ():
            if id(v) not in seen:
                seen.add(id(v))
                found.append(v)
    return found


def disk_megabytes(path):
    """Returns the size of a module file or folder, 1e6 bytes."""
    if os.path.isfile(path):
        return os.path.getsize(path) / 1e6
    total = 0
    for folder, _, files in os.walk(path):
        total += sum(os.lstat(os.path.join(folder, f)).st_size for f in files)
    return total / 1e6


def multiply_accumulates(fn, image_size):
    """Returns the multiply-accumulates of `fn` (float images [1, s, s, 3] ->
    features) on one image, counted from its graph (module docstring)."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec([1, image_size, image_size, 3], tf.float32)
    concrete = tf.function(fn).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(concrete)
    return count_graph(frozen.graph)


def count_graph(graph):
    """Returns the multiply-accumulates of the ops of `graph` (a tf.Graph
    with static shapes), functions it calls included."""
    total = 0
    for op in graph.get_operations():
        total += _op_macs(op)
    library = getattr(graph, "_functions", {}) or {}
    for function in library.values():
        inner = getattr(function, "graph", None)
        if inner is not None and inner is not graph:
            total += count_graph(inner)
    return total


def _shape(tensor):
    shape = tensor.shape
    if shape.rank is None or any(d is None for d in shape.as_list()):
        return None
    return shape.as_list()


def _op_macs(op):
    kind = op.type
    if kind in ("Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput"):
        out = _shape(op.outputs[0])
        kernel = _shape(op.inputs[1])
        if out is None or kernel is None:
            return 0
        k_h, k_w, c_in, c_k = kernel
        if kind == "Conv2D":
            return int(np.prod(out)) * k_h * k_w * c_in
        if kind == "DepthwiseConv2dNative":
            return int(np.prod(out)) * k_h * k_w
        return int(np.prod(out)) * k_h * k_w * c_k
    if kind in ("MatMul", "BatchMatMulV2", "BatchMatMulV3", "BatchMatMul"):
        out = _shape(op.outputs[0])
        a = _shape(op.inputs[0])
        if out is None or a is None:
            return 0
        transpose = op.get_attr("transpose_a") if kind == "MatMul" else None
        if transpose is None:
            transpose = op.get_attr("adj_x") if "adj_x" in op.node_def.attr else False
        inner = a[-2] if transpose else a[-1]
        return int(np.prod(out)) * inner
    if kind == "Einsum":
        return _einsum_macs(op)
    return 0


def _einsum_macs(op):
    equation = op.get_attr("equation").decode()
    inputs, _ = equation.split("->")
    sizes = {}
    for term, tensor in zip(inputs.split(","), op.inputs):
        shape = _shape(tensor)
        if shape is None or "." in term or len(term) != len(shape):
            return 0
        sizes.update(zip(term, shape))
    return int(np.prod(list(sizes.values()))) if sizes else 0


def throughput(fn, image_size, batch_size):
    """Returns images per second of `fn` on random [batch, s, s, 3] images
    (module docstring)."""
    images = tf.random.stateless_uniform(
        [batch_size, image_size, image_size, 3], seed=[3, 4]
    )
    np.asarray(fn(images))  # warm-up: tracing, allocation
    done, start = 0, time.perf_counter()
    while True:
        np.asarray(fn(images))
        done += 1
        seconds = time.perf_counter() - start
        if done >= MAX_BATCHES or (
            done >= MIN_BATCHES and seconds >= THROUGHPUT_SECONDS
        ):
            return done * batch_size / seconds


def profile(module, batch_size, report=None):
    """Returns the model metadata of `module` as row fields (the columns of
    benchmark.results.leaderboard.MODEL_COLUMNS); a count that cannot be
    made (a graph that does not freeze) is left empty with a note."""
    fn = module.features if module.has_features else module.logits
    fields = {
        "params": parameter_count(module),
        "feature_dim": module.feature_dim or "",
        "image_size": module.image_size,
        "module_mb": round(disk_megabytes(module.path), 3),
        "throughput_batch": batch_size,
    }
    try:
        macs = multiply_accumulates(fn, module.image_size)
        fields["gmacs"] = float(f"{macs / 1e9:.6g}")
    except (ValueError, TypeError, tf.errors.OpError, KeyError) as e:
        fields["gmacs"] = ""
        if report:
            report(f"[module] multiply-accumulates not counted: {str(e)[:120]}")
    fields["images_per_s"] = round(throughput(fn, module.image_size, batch_size), 1)
    return fields


def describe(fields):
    """Returns one line of a profile for the run's log."""
    macs = fields.get("gmacs")
    if macs == "":
        macs = "MACs not counted"
    elif macs < 0.01:
        macs = f"{macs * 1e3:.3g} MMACs/image"
    else:
        macs = f"{macs:.3g} GMACs/image"
    return (
        f"[module] {fields['params'] / 1e6:.3g} M parameters, {macs} at "
        f"{fields['image_size']} px, {fields['module_mb']:.3g} MB, "
        f"{fields['images_per_s']:,.0f} images/s at batch {fields['throughput_batch']}"
    )
