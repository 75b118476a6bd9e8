"""Full transfer: the linear probe and kNN on every image of each transfer
set (no per-class cap), for the statistical power a subset lacks.

Command:
  zoo-benchmark --config=full_transfer --module=MODULE --datasets=path/to/cifar10
Expected: on CIFAR-10 (50,000 train, 10,000 test) a mini-zoo softmax module
scores about 42% linear and 38% kNN, against 34% / 31% at 200 images per
class; about 2 minutes per module on 2 CPU cores (perf/benchmark_cost.py
--full_transfer).
"""

from benchmark.configs.config import BenchmarkConfig, evaluation


def get_config():
    """Returns the linear probe (15 L2 values) and kNN on whole splits."""
    return BenchmarkConfig(
        name="full_transfer",
        datasets=("tfds:cifar10",),
        max_per_class=None,  # every image of both splits
        batch_size=250,
        evaluations=(
            evaluation("linear_probe", num_l2=15),
            evaluation("knn", ks=(1, 5, 10, 20, 50)),
        ),
    )
