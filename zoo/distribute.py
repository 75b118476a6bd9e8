"""tf.distribute strategies chosen by name, and the device facts the trainer
derives from them (precision, XLA, replica count).

Strategy names (`--strategy`):
  default          TensorFlow's default strategy (one device, no distribution);
  one_device       OneDeviceStrategy on the first GPU, else the CPU;
  mirrored         MirroredStrategy over every local GPU (one machine);
  multi_worker     MultiWorkerMirroredStrategy; the cluster comes from TF_CONFIG;
  tpu[:ADDRESS]    TPUStrategy; ADDRESS is a Cloud TPU name, grpc://HOST:PORT,
                   or empty / "local" for the TPU VM the process runs on;
  cpu:N            MirroredStrategy over N logical CPU devices (tests and
                   laptops: real multi-replica semantics without a GPU).
"""

import json
import os
import socket

import tensorflow as tf

STRATEGY_NAMES = ("default", "one_device", "mirrored", "multi_worker", "tpu", "cpu:N")


class StrategyError(ValueError):
    """A strategy that cannot be created; the message says why and the fix."""


def check_strategy_name(name):
    """Raises StrategyError unless `name` is a strategy create_strategy knows
    (checked without creating it or touching a device)."""
    name = (name or "default").strip()
    fixed = ("default", "one_device", "mirrored", "multi_worker", "tpu")
    if name in fixed or name.startswith("tpu:"):
        return
    count = name.partition(":")[2]
    if name.startswith("cpu:") and count.isdigit() and int(count) > 0:
        return
    raise StrategyError(
        f"unknown strategy '{name}'; use one of {', '.join(STRATEGY_NAMES)}"
    )


def create_strategy(name="default"):
    """Returns the tf.distribute.Strategy named by `name` (see module doc)."""
    name = (name or "default").strip()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu" or name.startswith("tpu:"):
        return _tpu_strategy(name.partition(":")[2])
    if name.startswith("cpu:"):
        return _logical_cpu_strategy(name.partition(":")[2])
    raise StrategyError(
        f"unknown strategy '{name}'; use one of {', '.join(STRATEGY_NAMES)}"
    )


def _logical_cpu_strategy(count):
    try:
        count = int(count)
    except ValueError:
        count = 0
    if count < 1:
        raise StrategyError("cpu:N needs a positive replica count, e.g. cpu:2")
    cpu = tf.config.list_physical_devices("CPU")[0]
    configured = tf.config.get_logical_device_configuration(cpu)
    if not configured or len(configured) < count:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * count
            )
        except RuntimeError:
            raise StrategyError(
                f"cpu:{count} must be set before TensorFlow initialises its "
                "devices; choose the strategy first thing in a fresh process"
            ) from None
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(count)])


def _check_tf_config():
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise StrategyError(
            "multi_worker needs the TF_CONFIG environment variable "
            '({"cluster": {"worker": [...]}, "task": {"type": "worker", '
            '"index": i}}) on every worker'
        )
    try:
        config = json.loads(text)
        config["cluster"]["worker"], config["task"]["index"]
    except (ValueError, KeyError, TypeError):
        raise StrategyError(
            "TF_CONFIG is not JSON with cluster.worker and task.index; see "
            "https://www.tensorflow.org/guide/distributed_training#TF_CONFIG"
        ) from None


def _check_reachable(address, timeout=5.0):
    """Raises StrategyError unless grpc://HOST:PORT accepts a TCP connection."""
    host, _, port = address.removeprefix("grpc://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as error:
        raise StrategyError(
            f"TPU address {address} is unreachable ({type(error).__name__}); "
            "check the TPU is running and the address is grpc://HOST:8470"
        ) from None


def _tpu_strategy(address):
    address = "" if address == "local" else address
    if address.startswith("grpc://"):
        _check_reachable(address)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=address or "local"
        )
        if address:
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as error:  # noqa: BLE001 - any failure means "no TPU here"
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise StrategyError(
            f"cannot reach TPU '{address or 'local'}': {first[:160]}; pass "
            "--strategy=tpu:NAME (Cloud TPU name) or tpu:grpc://HOST:8470"
        ) from None
    return tf.distribute.TPUStrategy(resolver)


def device_kind(strategy):
    """Returns "TPU", "GPU" or "CPU": the kind of device the replicas run on."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "TPU"
    try:
        devices = strategy.extended.worker_devices
    except (RuntimeError, AttributeError):  # the default strategy has none
        devices = ()
    if any("GPU" in d.upper() for d in devices):
        return "GPU"
    if not devices and tf.config.list_logical_devices("GPU"):
        return "GPU"
    return "CPU"


def resolve_precision(precision, kind):
    """Returns the Keras dtype policy name for `precision` on device `kind`:
    "auto" is mixed_bfloat16 on TPU, mixed_float16 on GPU, float32 on CPU."""
    if precision == "auto":
        return {"TPU": "mixed_bfloat16", "GPU": "mixed_float16"}.get(kind, "float32")
    if precision not in ("float32", "mixed_float16", "mixed_bfloat16"):
        raise StrategyError(
            f"unknown precision '{precision}'; use auto, float32, mixed_float16 "
            "or mixed_bfloat16"
        )
    return precision


def resolve_jit_compile(jit_compile, kind):
    """Returns whether to XLA-compile the step: None means on GPU (TPU steps are
    always compiled by TPUStrategy), off on CPU."""
    if jit_compile is None:
        return kind == "GPU"
    return bool(jit_compile)


def resolve_matmul_pointwise_conv(matmul_pointwise_conv, kind):
    """Returns whether to run 1x1 convolutions as matrix products: None means
    on CPU, where it was measured faster, and off on GPU and TPU."""
    if matmul_pointwise_conv is None:
        return kind == "CPU"
    return bool(matmul_pointwise_conv)


def is_chief(strategy):
    """Returns whether this process writes checkpoints and summaries."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0
