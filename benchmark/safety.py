"""Op-safety scan of a SavedModel, run before anything from the module executes.

A benchmark module must be a pure function of its input images. Loading a
SavedModel runs its graph functions (resource initialisers at load time, the
forward pass later), so a module could read or write files, talk to the
network or run embedded Python. `unsafe_ops` reads `saved_model.pb` with the
protobuf parser only (tensorflow.core.protobuf.saved_model_pb2: nothing from
the module runs) and reports every node, in the main graph and in every
function of the function library, whose op is on the denylist below.

Checkpoint ops (SaveV2, RestoreV2, MergeV2Checkpoints, Save/Restore and their
slice variants) are in every SavedModel: the saver that writes and restores the
variables. They are allowed only inside the saver's own subgraph: the nodes
that `saver_def.save_tensor_name` and `saver_def.restore_op_name` depend on,
and the library functions reachable from those nodes and from nothing else.
Anywhere else (say in `__call__`) they are file writes and reads like any
other and the module is refused. Ops that name a file through an attribute
(PrintV2 to "file://...", proto ops with a descriptor file) are refused only
when that attribute points outside the process.
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
    saver_nodes = _saver_nodes(graph, meta_graph.saver_def)
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
        if (finding := _check_node(node, "graph", node.name in saver_nodes))
    ]
    for name, function in functions.items():
        for node in function.node_def:
            finding = _check_node(node, name, name in trusted)
            if finding:
                findings.append(finding)
    return findings


def _check_node(node, where, in_saver):
    """Returns the Finding for `node`, or None if its op is allowed there."""
    if node.op in DENIED_OPS:
        return Finding(node.op, DENIED_OPS[node.op], where, node.name)
    if node.op in CHECKPOINT_OPS and not in_saver:
        return Finding(node.op, f"{FILE_SYSTEM} outside the saver", where, node.name)
    attribute, allowed = ATTRIBUTE_RULES.get(node.op, (None, ()))
    if attribute and attribute in node.attr:
        value = node.attr[attribute].s.decode("utf-8", "replace")
        if value not in allowed:
            reason = f"{FILE_SYSTEM} ({attribute}={value!r})"
            return Finding(node.op, reason, where, node.name)
    return None


def _saver_nodes(graph, saver_def):
    """Returns the names of the graph nodes the saver's save/restore ops need."""
    by_name = {n.name: n for n in graph.node}
    roots = [
        _node_name(t)
        for t in (saver_def.save_tensor_name, saver_def.restore_op_name)
        if t
    ]
    seen, stack = set(), [r for r in roots if r in by_name]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack += [i for i in map(_node_name, by_name[name].input) if i in by_name]
    return seen


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
