"""Op-safety scan of a SavedModel, run before anything from the module executes.

A benchmark module must be a pure function of its input images. Loading a
SavedModel runs its graph functions (resource initialisers and the saver's
restore op at load time, the forward pass later), so a module could read or
write files, talk to the network or run embedded Python. `unsafe_ops` reads
`saved_model.pb` with the protobuf parser only
(tensorflow.core.protobuf.saved_model_pb2: nothing from the module runs) and
checks every node, in the main graph and in every function of the function
library, against an **allowlist** (`ALLOWED_OPS`): the pure tensor ops an
image module needs for inference and fine-tuning (math, nn, array and image
ops, control flow, variables, function calls). Anything else is refused with
the op's name; ops known to escape (DENIED_OPS: file, network, Python,
debugger) are named with the reason. TensorFlow registers about 1,900 ops;
a denylist cannot keep up with them, an allowlist fails closed.

The allowlist was derived from every module kind the benchmark is tested on
and reviewed op by op: the zoo's exports (ResNet-50 and Inception v3 with all
eleven objectives), Keras 3 `model.export()` of the keras.applications
families (MobileNet V2 / V3, EfficientNet V1 / V2, ResNet V1 / V2, Inception
v3, DenseNet, ConvNeXt, Xception, NASNet, VGG), tf_keras SavedModels of the
same, and the authors' TF1 / TF2 SavedModels through the importer; then
widened by the same families' neighbours (every activation, pooling and
resize op, TF1 control flow) so a typical TF-Hub image module passes.
`python -m benchmark.safety MODULE_DIR` lists a module's ops, marking those
outside the allowlist, for reviewing a new family.

Checkpoint ops (SaveV2, RestoreV2, MergeV2Checkpoints, Save/Restore and their
slice variants) are in every SavedModel: the saver that writes and restores the
variables. They are allowed only inside the saver's own subgraph: the nodes
that `saver_def.save_tensor_name` and `saver_def.restore_op_name` depend on,
and the library functions reachable from those nodes and from nothing else.
Loading runs the restore path, so it is verified node by node: it may hold
only restore ops and plumbing (`RESTORE_PATH_OPS`), never a checkpoint write,
and every RestoreV2 / Restore / RestoreSlice must read the prefix the loader
feeds (`saver_def.filename_tensor_name`: the module's own variables), passed
through Identity only, never a constant path or a joined string. Ops that
name a file through an attribute (PrintV2 to "file://...", proto ops with a
descriptor file) are refused when that attribute points outside the process.
"""

import collections
import dataclasses
import os

from tensorflow.core.protobuf import saved_model_pb2

FILE_SYSTEM = "file-system access"
NETWORK = "network or cross-process communication"
PYTHON = "embedded Python"
DEBUG = "debugger output to files or sockets"

# op -> why it is refused, wherever it appears.
DENIED_OPS = {
    **dict.fromkeys(
        (
            "ReadFile",
            "WriteFile",
            "MatchingFiles",
            "FileSystemSetConfiguration",
            "ImmutableConst",  # Memory-maps a file.
            "WholeFileReader",
            "WholeFileReaderV2",
            "TextLineReader",
            "TextLineReaderV2",
            "FixedLengthRecordReader",
            "FixedLengthRecordReaderV2",
            "TFRecordReader",
            "TFRecordReaderV2",
            "LMDBReader",
            "ReaderRead",
            "ReaderReadV2",
            "ReaderReadUpTo",
            "ReaderReadUpToV2",
            "TFRecordDataset",
            "TFRecordDatasetV2",
            "TextLineDataset",
            "FixedLengthRecordDataset",
            "FixedLengthRecordDatasetV2",
            "LMDBDataset",
            "ExperimentalLMDBDataset",
            "SqlDataset",
            "ExperimentalSqlDataset",
            "CSVDataset",
            "CSVDatasetV2",
            "ExperimentalCSVDataset",
            "CacheDataset",
            "CacheDatasetV2",
            "SaveDataset",
            "SaveDatasetV2",
            "LoadDataset",
            "SnapshotDataset",
            "SnapshotDatasetV2",
            "SnapshotDatasetReader",
            "SnapshotNestedDatasetReader",
            "DatasetToTFRecord",
            "ExperimentalDatasetToTFRecord",
            "InitializeTableFromTextFile",
            "InitializeTableFromTextFileV2",
            "GenerateVocabRemapping",
            "LoadAndRemapMatrix",
            "CreateSummaryFileWriter",
            "CreateSummaryDbWriter",
            "SummaryWriter",
            "WriteSummary",
            "WriteScalarSummary",
            "WriteHistogramSummary",
            "WriteImageSummary",
            "WriteAudioSummary",
            "WriteGraphSummary",
            "WriteRawProtoSummary",
            "ImportEvent",
            "FlushSummaryWriter",
            "CloseSummaryWriter",
        ),
        FILE_SYSTEM,
    ),
    **dict.fromkeys(
        (
            "Rpc",
            "TryRpc",
            "RpcClient",
            "RpcServer",
            "RpcServerStart",
            "RpcServerRegister",
            "RpcCall",
            "RpcCheckStatus",
            "RpcGetValue",
            "DeleteRpcFutureResource",
            "Send",
            "Recv",
            "_Send",
            "_Recv",
            "_HostSend",
            "_HostRecv",
            "RemoteCall",
            "DataServiceDataset",
            "DataServiceDatasetV2",
            "DataServiceDatasetV3",
            "DataServiceDatasetV4",
            "RegisterDataset",
            "RegisterDatasetV2",
            "DistributedSave",
            "CollectiveReduce",
            "CollectiveReduceV2",
            "CollectiveReduceV3",
            "CollectiveGather",
            "CollectiveGatherV2",
            "CollectiveBcastSend",
            "CollectiveBcastRecv",
            "CollectiveBcastSendV2",
            "CollectiveBcastRecvV2",
            "CollectiveAllToAllV2",
            "CollectiveAllToAllV3",
            "CollectiveInitializeCommunicator",
            "NcclAllReduce",
            "NcclBroadcast",
            "NcclReduce",
        ),
        NETWORK,
    ),
    **dict.fromkeys(("PyFunc", "PyFuncStateless", "EagerPyFunc"), PYTHON),
    **dict.fromkeys(
        (
            "DebugIdentity",
            "DebugIdentityV2",
            "DebugIdentityV3",
            "DebugNanCount",
            "DebugNumericSummary",
        ),
        DEBUG,
    ),
}

# Allowed only in the saver's subgraph (see the module docstring).
CHECKPOINT_OPS = frozenset(
    {
        "SaveV2",
        "RestoreV2",
        "MergeV2Checkpoints",
        "Save",
        "SaveSlices",
        "Restore",
        "RestoreSlice",
    }
)

RESTORE_OPS = frozenset({"RestoreV2", "Restore", "RestoreSlice"})
SAVE_OPS = CHECKPOINT_OPS - RESTORE_OPS

# Ops a loader-run restore path may hold besides RESTORE_OPS.
RESTORE_PATH_OPS = frozenset(
    {
        "Const",
        "Identity",
        "IdentityN",
        "NoOp",
        "Placeholder",
        "PlaceholderWithDefault",
        "AssignVariableOp",
        "Assign",
        "VarHandleOp",
        "VariableV2",
        "DisableCopyOnRead",
        "StatefulPartitionedCall",
        "PartitionedCall",
    }
)

# The pure tensor ops an image module may use (module docstring). Grouped
# for review; none touches files, the network, Python or other processes.
# fmt: off
ALLOWED_OPS = frozenset(
    {
        # Graph plumbing, constants, placeholders.
        "Const", "Identity", "IdentityN", "NoOp", "Placeholder",
        "PlaceholderWithDefault", "StopGradient", "PreventGradient",
        "EnsureShape", "CheckNumerics", "CheckNumericsV2", "Assert",
        "Snapshot",
        # Function calls and control flow (TF2 and TF1 forms).
        "StatefulPartitionedCall", "PartitionedCall", "If", "StatelessIf",
        "While", "StatelessWhile", "Case", "StatelessCase", "Switch",
        "Merge", "Enter", "Exit", "NextIteration", "LoopCond",
        "ControlTrigger",
        # Variables.
        "VarHandleOp", "ReadVariableOp", "AssignVariableOp",
        "AssignAddVariableOp", "AssignSubVariableOp", "VarIsInitializedOp",
        "DestroyResourceOp", "DisableCopyOnRead", "VariableV2", "Variable",
        "Assign", "AssignAdd", "AssignSub", "IsVariableInitialized",
        # Element-wise math.
        "Add", "AddV2", "AddN", "Sub", "Mul", "MulNoNan", "Div", "RealDiv",
        "DivNoNan", "FloorDiv", "FloorMod", "Mod", "TruncateDiv",
        "Maximum", "Minimum", "Neg", "Abs", "Sign", "Square", "Sqrt",
        "Rsqrt", "Reciprocal", "Inv", "Pow", "Exp", "Expm1", "Log", "Log1p",
        "Floor", "Ceil", "Round", "Rint", "Erf", "Erfc", "Sin", "Cos", "Tan",
        "Atan", "Atan2", "Tanh", "Sigmoid", "SquaredDifference", "ClipByValue",
        "Xlogy", "Xdivy", "IsNan", "IsInf", "IsFinite",
        # Comparisons and logic.
        "Equal", "NotEqual", "Less", "LessEqual", "Greater", "GreaterEqual",
        "LogicalAnd", "LogicalOr", "LogicalNot", "Select", "SelectV2",
        # Activations.
        "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Softplus", "Softsign",
        "Softmax", "LogSoftmax", "Gelu",
        # Reductions and scans.
        "Sum", "Mean", "Max", "Min", "Prod", "All", "Any", "ArgMax", "ArgMin",
        "Cumsum", "Cumprod", "L2Loss", "TopKV2",
        # Linear algebra and convolutions.
        "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum",
        "BiasAdd", "BiasAddV1", "Conv2D", "Conv3D", "Conv2DBackpropInput",
        "DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput",
        "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3",
        "MatrixDiagV3", "MatrixBandPart",
        # Pooling and resizing.
        "MaxPool", "MaxPoolV2", "MaxPool3D", "AvgPool", "AvgPool3D",
        "ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic",
        "ResizeArea", "ScaleAndTranslate", "CropAndResize",
        # Shapes, slicing, gathering.
        "Shape", "ShapeN", "Size", "Rank", "Reshape", "Squeeze", "ExpandDims",
        "Transpose", "ConcatV2", "Concat", "Split", "SplitV", "Slice",
        "StridedSlice", "Pack", "Unpack", "Tile", "Pad", "PadV2", "MirrorPad",
        "Fill", "ZerosLike", "OnesLike", "Range", "Cast", "Bitcast",
        "GatherV2", "Gather", "GatherNd", "ScatterNd", "OneHot", "Where",
        "BroadcastTo", "BroadcastArgs", "BroadcastGradientArgs",
        "DepthToSpace", "SpaceToDepth", "BatchToSpaceND", "SpaceToBatchND",
        "ReverseV2", "Unique", "InvertPermutation",
        # Random numbers (dropout, stochastic depth at training time).
        "RandomUniform", "RandomUniformInt", "RandomStandardNormal",
        "TruncatedNormal", "StatelessRandomUniform", "StatelessRandomNormal",
        "StatelessTruncatedNormal", "StatelessRandomUniformV2",
        "StatelessRandomNormalV2", "StatelessTruncatedNormalV2",
        "StatelessRandomGetKeyCounter", "StatelessRandomGetKeyCounterAlg",
        "StatelessRandomGetAlg",
        # Strings the saver builds its checkpoint names with (no file access),
        # and tf.print to stderr / stdout / the log (PrintV2's stream is
        # checked: see ATTRIBUTE_RULES).
        "StringJoin", "ShardedFilename", "StaticRegexFullMatch",
        "StringFormat", "StringLength", "PrintV2",
        # Tensor lists (while loops over sequences).
        "TensorListReserve", "TensorListFromTensor", "TensorListGetItem",
        "TensorListSetItem", "TensorListStack", "TensorListLength",
        "TensorListElementShape", "TensorListPushBack", "TensorListPopBack",
    }
)
# fmt: on

NOT_ALLOWED = "an op outside the allowlist of pure image-module ops"

# op -> (attribute, values that keep the op in-process).
IN_PROCESS_STREAMS = ("stderr", "stdout", "log(info)", "log(warning)", "log(error)")
ATTRIBUTE_RULES = {
    "PrintV2": ("output_stream", IN_PROCESS_STREAMS),
    "DecodeProtoV2": ("descriptor_source", ("local://",)),
    "EncodeProto": ("descriptor_source", ("local://",)),
}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One refused node.

    Attributes:
      op: the op type ("ReadFile").
      reason: the denylist category ("file-system access").
      where: the function (or "graph") holding the node.
      node: the node's name.
    """

    op: str
    reason: str
    where: str
    node: str


def unsafe_ops(saved_model_dir):
    """Returns the `Finding`s of the SavedModel in `saved_model_dir`, [] if safe.

    Reads `saved_model.pb` (what tf.saved_model.load reads first) and scans
    every meta graph: its graph nodes and all function-library functions.
    Raises OSError if the file is missing and ValueError if it does not parse.
    """
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        data = f.read()
    try:
        proto.ParseFromString(data)
    except Exception as error:  # noqa: BLE001 - protobuf's DecodeError and kin
        raise ValueError(f"saved_model.pb does not parse: {error}") from None
    findings = []
    for meta_graph in proto.meta_graphs:
        findings += _scan_meta_graph(meta_graph)
    return findings


def _scan_meta_graph(meta_graph):
    """Returns the Findings of one MetaGraphDef."""
    graph = meta_graph.graph_def
    functions = {f.signature.name: f for f in graph.library.function}
    saver_def = meta_graph.saver_def
    saver_nodes = _saver_nodes(graph, saver_def)
    saver_functions = _reachable_functions(
        [n for n in graph.node if n.name in saver_nodes], functions, ()
    )
    other_roots = [n for n in graph.node if n.name not in saver_nodes]
    # Every library function may run (object-graph functions have no caller
    # in the graph), so everything but the saver's own functions is a root.
    other_functions = _reachable_functions(
        other_roots, functions, [f for f in functions if f not in saver_functions]
    )
    trusted = saver_functions - other_functions
    findings = [
        finding
        for node in graph.node
        if (finding := _check_node(node, "graph", node.name in saver_nodes, functions))
    ]
    for name, function in functions.items():
        for node in function.node_def:
            finding = _check_node(node, name, name in trusted, functions)
            if finding:
                findings.append(finding)
    return findings + _restore_path_findings(graph, saver_def, functions)


def _check_node(node, where, in_saver, functions):
    """Returns the Finding for `node`, or None if its op is allowed there."""
    if node.op in DENIED_OPS:
        return Finding(node.op, DENIED_OPS[node.op], where, node.name)
    if node.op in CHECKPOINT_OPS:
        if in_saver:
            return None
        return Finding(node.op, f"{FILE_SYSTEM} outside the saver", where, node.name)
    if node.op not in ALLOWED_OPS and node.op not in functions:
        return Finding(node.op, NOT_ALLOWED, where, node.name)
    attribute, allowed = ATTRIBUTE_RULES.get(node.op, (None, ()))
    if attribute and attribute in node.attr:
        value = node.attr[attribute].s.decode("utf-8", "replace")
        if value not in allowed:
            reason = f"{FILE_SYSTEM} ({attribute}={value!r})"
            return Finding(node.op, reason, where, node.name)
    return None


def _restore_path_findings(graph, saver_def, functions):
    """Returns the Findings of the restore path the loader runs: graph nodes
    that `saver_def.restore_op_name` depends on and the functions they call
    may hold only RESTORE_OPS and RESTORE_PATH_OPS, and every restore op must
    read the prefix the loader feeds (see the module docstring)."""
    if not saver_def.restore_op_name:
        return []
    by_name = {n.name: n for n in graph.node}
    restore_nodes = _ancestors(by_name, [_node_name(saver_def.restore_op_name)])
    feed = _node_name(saver_def.filename_tensor_name)
    findings = []
    for name in sorted(restore_nodes):
        node = by_name[name]
        findings += _restore_node_findings(node, "graph", functions)
        if node.op in RESTORE_OPS and _trace(by_name, node.input[0]) != ("node", feed):
            findings.append(
                Finding(node.op, RESTORE_ELSEWHERE, "graph (restore path)", node.name)
            )
        for callee, args in _calls(node, functions):
            for index in _prefix_args(callee, functions, set()):
                source = args[index] if index < len(args) else ""
                if _trace(by_name, source) != ("node", feed):
                    findings.append(
                        Finding(node.op, RESTORE_ELSEWHERE, f"{callee} call", node.name)
                    )
    for callee in _reachable_functions(
        [by_name[n] for n in restore_nodes], functions, ()
    ):
        for node in functions[callee].node_def:
            findings += _restore_node_findings(node, callee, functions)
    return findings


RESTORE_ELSEWHERE = (
    f"{FILE_SYSTEM}: a restore that reads another checkpoint than the module's own"
)


def _restore_node_findings(node, where, functions):
    """Returns the Finding of a restore-path node that is not a restore op or
    plumbing (a checkpoint write there runs at load time)."""
    if node.op in RESTORE_OPS or node.op in RESTORE_PATH_OPS or node.op in functions:
        return []
    reason = (
        f"{FILE_SYSTEM}: a checkpoint write in the restore path"
        if node.op in SAVE_OPS
        else f"{NOT_ALLOWED} in the restore path"
    )
    return [Finding(node.op, reason, f"{where} (restore path)", node.name)]


def _ancestors(by_name, roots):
    """Returns the names of `roots` and every graph node they depend on."""
    seen, stack = set(), [r for r in roots if r in by_name]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack += [i for i in map(_node_name, by_name[name].input) if i in by_name]
    return seen


def _trace(by_name, tensor, args=()):
    """Returns where `tensor` comes from through Identity nodes: ("node",
    name) of the first other node, ("arg", index) of a function argument, or
    ("unknown", tensor)."""
    seen = set()
    while True:
        name = tensor.lstrip("^").split(":")[0]
        if name in args:
            return ("arg", args.index(name))
        node = by_name.get(name)
        if node is None or name in seen:
            return ("unknown", tensor)
        seen.add(name)
        if node.op != "Identity" or not node.input:
            return ("node", name)
        tensor = node.input[0]


def _calls(node, functions):
    """Yields (function name, the node's data inputs) for each function the
    node calls (a call op's `f`, or the node's op itself)."""
    inputs = [i for i in node.input if not i.startswith("^")]
    if node.op in functions:
        yield node.op, inputs
    if "f" in node.attr and node.attr["f"].func.name in functions:
        yield node.attr["f"].func.name, inputs


def _prefix_args(name, functions, visiting):
    """Returns the argument indices of function `name` that reach the prefix
    of a restore op inside it (directly or through calls)."""
    if name in visiting:
        return set()
    visiting = visiting | {name}
    function = functions[name]
    args = [a.name for a in function.signature.input_arg]
    by_name = {n.name: n for n in function.node_def}
    indices = set()
    for node in function.node_def:
        if node.op in RESTORE_OPS and node.input:
            kind, where = _trace(by_name, node.input[0], args)
            if kind == "arg":
                indices.add(where)
        for callee, inputs in _calls(node, functions):
            for index in _prefix_args(callee, functions, visiting):
                if index < len(inputs):
                    kind, where = _trace(by_name, inputs[index], args)
                    if kind == "arg":
                        indices.add(where)
    return indices


def _saver_nodes(graph, saver_def):
    """Returns the names of the graph nodes the saver's save/restore ops need."""
    by_name = {n.name: n for n in graph.node}
    roots = [
        _node_name(t)
        for t in (saver_def.save_tensor_name, saver_def.restore_op_name)
        if t
    ]
    return _ancestors(by_name, roots)


def _reachable_functions(nodes, functions, extra_roots):
    """Returns the names of the library functions that `nodes` and the
    functions `extra_roots` call, directly or through other functions."""
    seen = set()
    stack = list(extra_roots)
    for node in nodes:
        stack += _called_functions(node, functions)
    while stack:
        name = stack.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for node in functions[name].node_def:
            stack += _called_functions(node, functions)
    return seen


def _called_functions(node, functions):
    """Returns the function names a node calls: its op when that is a library
    function, and every function-valued attribute (f, then_branch, body, ...)."""
    names = [node.op] if node.op in functions else []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names += [f.name for f in value.list.func]
    return names


def _node_name(tensor_name):
    """Returns the node name of "node:0" or "^node"."""
    return tensor_name.lstrip("^").split(":")[0]


def summarise(findings):
    """Returns a one-line description of `findings`, the first ones named."""
    counts = collections.Counter(f.op for f in findings)
    first = findings[0]
    others = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in counts.items())
    return f"op {first.op} ({first.reason}) in {first.where}, node {first.node}" + (
        f"; all refused ops: {others}" if len(findings) > 1 else ""
    )


def module_ops(saved_model_dir):
    """Returns {op: count} over every node of the SavedModel (graph and
    function library), read with the protobuf parser only."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    counts = collections.Counter()
    for meta_graph in proto.meta_graphs:
        graph = meta_graph.graph_def
        counts.update(n.op for n in graph.node)
        for function in graph.library.function:
            counts.update(n.op for n in function.node_def)
    names = {
        f.signature.name
        for m in proto.meta_graphs
        for f in m.graph_def.library.function
    }
    return {op: n for op, n in sorted(counts.items()) if op not in names}


def _main(argv):
    """Prints each module's ops, '!' marking those the scan would refuse."""
    for path in argv[1:]:
        print(path)
        for op, count in module_ops(path).items():
            mark = " " if op in ALLOWED_OPS or op in CHECKPOINT_OPS else "!"
            print(f"  {mark} {op} x{count}")


if __name__ == "__main__":
    import sys

    _main(sys.argv)
