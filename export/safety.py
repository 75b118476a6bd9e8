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
import stat

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


class ScanLimitError(ValueError):
    """A module over the scan's own bounds (SCAN_LIMITS); one line."""


# The scan's own bounds: a module over them is refused, never half-read.
MAX_GRAPH_BYTES = 1 << 30  # saved_model.pb (the weights live beside it)
MAX_NODES = 5_000_000  # graph and function nodes, all meta graphs together
MAX_CALL_DEPTH = 256  # functions calling functions; real modules nest < 30


def unsafe_ops(saved_model_dir):
    """Returns the `Finding`s of the SavedModel in `saved_model_dir`, [] if safe.

    Reads `saved_model.pb` (what tf.saved_model.load reads first) and scans
    every meta graph: its graph nodes and all function-library functions.
    Raises OSError if the file is missing, ValueError if it does not parse
    and ScanLimitError if it is over the scan's bounds (MAX_GRAPH_BYTES,
    MAX_NODES, MAX_CALL_DEPTH). The scan is iterative: no graph shape makes
    it recurse.
    """
    path = os.path.join(saved_model_dir, "saved_model.pb")
    size = os.path.getsize(path)
    if size > MAX_GRAPH_BYTES:
        raise ScanLimitError(
            f"saved_model.pb is {size:,} bytes, over the scan's bound of "
            f"{MAX_GRAPH_BYTES:,} (an image module's graph is far smaller)"
        )
    proto = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        data = f.read()
    try:
        proto.ParseFromString(data)
    except Exception as error:  # noqa: BLE001 - protobuf's DecodeError and kin
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"saved_model.pb does not parse: {reason}") from None
    nodes = sum(
        len(m.graph_def.node)
        + sum(len(f.node_def) for f in m.graph_def.library.function)
        for m in proto.meta_graphs
    )
    if nodes > MAX_NODES:
        raise ScanLimitError(
            f"its graph has {nodes:,} nodes, over the scan's bound of {MAX_NODES:,}"
        )
    findings = []
    for meta_graph in proto.meta_graphs:
        findings += _scan_meta_graph(meta_graph)
    return findings


def _scan_meta_graph(meta_graph):
    """Returns the Findings of one MetaGraphDef."""
    graph = meta_graph.graph_def
    functions = {f.signature.name: f for f in graph.library.function}
    _check_call_depth(functions)
    saver_nodes, saver_functions, findings = _saver_shape(meta_graph, functions)
    for node in graph.node:
        finding = _check_node(node, "graph", node.name in saver_nodes, functions)
        if finding:
            findings.append(finding)
    for name, function in functions.items():
        for node in function.node_def:
            finding = _check_node(node, name, name in saver_functions, functions)
            if finding:
                findings.append(finding)
    return findings + _restore_path_findings(graph, meta_graph.saver_def, functions)


def _check_call_depth(functions):
    """Raises ScanLimitError when functions call each other in a cycle or
    more than MAX_CALL_DEPTH deep (an explicit stack, no recursion)."""
    callees = {
        name: {c for n in f.node_def for c in _called_functions(n, functions)}
        for name, f in functions.items()
    }
    depth, on_path = {}, set()
    for root in callees:
        stack = [(root, iter(sorted(callees[root] & functions.keys())))]
        on_path.add(root)
        while stack:
            name, pending = stack[-1]
            callee = next(pending, None)
            if callee is None:
                stack.pop()
                on_path.discard(name)
                depth[name] = 1 + max(
                    (depth[c] for c in callees[name] if c in functions), default=0
                )
                if depth[name] > MAX_CALL_DEPTH:
                    raise ScanLimitError(
                        "its functions call each other more than "
                        f"{MAX_CALL_DEPTH} deep (through {name}), the scan's bound"
                    )
            elif callee in on_path:
                raise ScanLimitError(
                    f"function {callee} calls itself (through {name}); TensorFlow "
                    "functions do not recurse"
                )
            elif callee not in depth:
                on_path.add(callee)
                stack.append((callee, iter(sorted(callees[callee] & functions.keys()))))


FORGED = f"{FILE_SYSTEM}: a saver that is not the one TensorFlow writes"

# What TensorFlow's savers put in the graph (TF1 Saver nodes, TF2's two
# calls) and in the functions those calls name (TF2's traced save / restore).
SAVER_GRAPH_OPS = (ALLOWED_OPS | CHECKPOINT_OPS) - frozenset(
    {
        "If", "StatelessIf", "While", "StatelessWhile", "Case", "StatelessCase",
        "Switch", "Merge", "Enter", "Exit", "NextIteration", "LoopCond",
    }
)  # fmt: skip
SAVER_FUNCTION_OPS = CHECKPOINT_OPS | frozenset(
    {
        "Const", "Identity", "IdentityN", "NoOp", "DisableCopyOnRead",
        "ReadVariableOp", "AssignVariableOp", "StringJoin", "ShardedFilename",
        "StaticRegexFullMatch", "Select", "SelectV2", "Pack",
    }
)  # fmt: skip


def _saver_shape(meta_graph, functions):
    """Returns (saver graph nodes, saver functions, Findings): the subgraph
    `saver_def` names, checked against the shape TensorFlow's savers write.

    The module wrote `saver_def` and its subgraph itself, so nothing in it is
    taken on trust: its nodes may hold only saver ops; the functions they
    call (TF2's traced save and restore) only saver ops and no calls; no
    other graph node, library function, saved object or signature may call
    those functions or depend on a checkpoint op or call of the subgraph.
    Checkpoint ops are allowed in these nodes and functions alone.
    """
    graph, saver_def = meta_graph.graph_def, meta_graph.saver_def
    by_name = {n.name: n for n in graph.node}
    roots = [
        _node_name(t)
        for t in (saver_def.save_tensor_name, saver_def.restore_op_name)
        if t
    ]
    nodes = _ancestors(by_name, roots)
    findings = []

    def forged(node, where, why):
        findings.append(Finding(node.op, f"{FORGED} ({why})", where, node.name))

    saver_functions = set()
    for name in sorted(nodes):
        node = by_name[name]
        if node.op not in SAVER_GRAPH_OPS and node.op not in functions:
            forged(node, "graph (saver)", f"op {node.op} in the saver's subgraph")
        saver_functions.update(_called_functions(node, functions))
    saver_functions &= functions.keys()
    for name in sorted(saver_functions):
        for node in functions[name].node_def:
            if node.op not in SAVER_FUNCTION_OPS:
                forged(node, name, f"saver function holds {node.op}")
    for node in graph.node:
        if node.name not in nodes:
            for callee in saver_functions & set(_called_functions(node, functions)):
                forged(node, "graph", f"calls the saver function {callee}")
    for name, function in functions.items():
        if name not in saver_functions:
            for node in function.node_def:
                for callee in saver_functions & set(_called_functions(node, functions)):
                    forged(node, name, f"calls the saver function {callee}")
    for callee in sorted(saver_functions & _object_functions(meta_graph)):
        findings.append(
            Finding(
                callee, f"{FORGED} (a saved object calls it)", "object graph", callee
            )
        )
    active = _saver_dependents(by_name, nodes, functions)
    for node in graph.node:
        if node.name not in nodes:
            for source in map(_node_name, node.input):
                if source in active:
                    forged(node, "graph", f"depends on the saver's {source}")
    for key, signature in meta_graph.signature_def.items():
        for tensor in [*signature.inputs.values(), *signature.outputs.values()]:
            if _node_name(tensor.name) in active:
                node = by_name[_node_name(tensor.name)]
                forged(node, f"signature {key}", "a signature reads the saver")
    return nodes, saver_functions, findings


def _saver_dependents(by_name, nodes, functions):
    """Returns the saver nodes that are checkpoint ops or calls, and every
    saver node that depends on one (what only the saver may consume)."""
    consumers = collections.defaultdict(list)
    for name in nodes:
        for source in map(_node_name, by_name[name].input):
            consumers[source].append(name)
    stack = [
        name
        for name in nodes
        if by_name[name].op in CHECKPOINT_OPS
        or _called_functions(by_name[name], functions)
    ]
    active = set()
    while stack:
        name = stack.pop()
        if name not in active:
            active.add(name)
            stack += consumers[name]
    return active


def _object_functions(meta_graph):
    """Returns the names of the functions the saved objects can call (their
    methods, concrete functions and signatures)."""
    graph = meta_graph.object_graph_def
    names = set(graph.concrete_functions)
    for node in graph.nodes:
        kind = node.WhichOneof("kind")
        if kind == "function":
            names.update(node.function.concrete_functions)
        elif kind == "bare_concrete_function":
            names.add(node.bare_concrete_function.concrete_function_name)
    return names


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
            indices, elsewhere = _prefix_args(callee, functions)
            findings += [
                Finding(n.op, RESTORE_ELSEWHERE, f"{callee} (restore path)", n.name)
                for n in elsewhere
            ]
            for index in sorted(indices):
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


def _prefix_args(name, functions):
    """Returns (argument indices that reach the prefix of a restore op in
    function `name`, its restore nodes whose prefix is no argument). Only its
    own nodes are read: a saver function that calls another is refused by
    `_saver_shape`."""
    function = functions[name]
    args = [a.name for a in function.signature.input_arg]
    by_name = {n.name: n for n in function.node_def}
    indices, elsewhere = set(), []
    for node in function.node_def:
        if node.op in RESTORE_OPS:
            kind, where = _trace(by_name, node.input[0] if node.input else "", args)
            if kind == "arg":
                indices.add(where)
            else:
                elsewhere.append(node)
    return indices, elsewhere


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


class UnsafeModuleError(ValueError):
    """A module the scan refuses; the message says why in one line."""


def check_module(saved_model_dir):
    """Raises UnsafeModuleError unless the module folder holds only regular
    files and folders (a symlink could point at /dev/zero or out of the
    module, a FIFO blocks whoever opens it) and its SavedModel passes
    `unsafe_ops` within the scan's bounds. OSError / ValueError: no readable
    SavedModel there. Nothing from the module runs."""
    special = _first_special_entry(saved_model_dir)
    if special:
        raise UnsafeModuleError(
            f"{special} is {_kind(special)}, and a module folder may hold only "
            "regular files and folders"
        )
    try:
        findings = unsafe_ops(saved_model_dir)
    except ScanLimitError as e:
        raise UnsafeModuleError(str(e)) from None
    if findings:
        raise UnsafeModuleError(
            f"it contains {summarise(findings)}; benchmark modules must be pure "
            "functions of their images (docs/protocols.md, op safety)"
        )


def _first_special_entry(root):
    """Returns the first entry below `root` that is a symlink or not a regular
    file or folder, or None (nothing is followed or opened)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                return path
    return None


def _kind(path):
    """Returns what a special entry is, in words."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return f"a symlink to {os.readlink(path)}"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


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
