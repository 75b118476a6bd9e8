"""Smoke, all: every registered evaluator at toy size, on embedded data only
(what tests use to reach every evaluator; `smoke` is its transfer part).

Command:
  make demo   # once, for a module
  zoo-benchmark --config=smoke_all --module=runs/demo/modules/resnet50_softmax_seed0
Expected: rows for all seven evaluators in one run, about 50 s on 2 CPU
cores for the demo's softmax module (measured: linear probe 0.87 and kNN
0.83 on digits 5-9, the transfer task, chance 0.2; class separation R^2 0.32;
fine-tuning 0.73 after only 100 steps; Chexpert mean AUC 0.996 on the digits
stand-in, whose pathology j is digit j of 0-4, the module's own classes;
ImageNet-OOD clean top-1 0.96 on digits 0-4, mean error 0.29 under three
generated corruptions; calibration NLL 0.12, ECE 0.03).
The data needs no download: scikit-learn's digits and a CheXpert-format copy
of them (`chexpert:digits`). A sandboxed run is stopped after 10 minutes.
"""

import dataclasses

from benchmark.configs import smoke
from benchmark.configs.config import evaluation


def get_config():
    """Returns the smoke_all config: smoke's evaluations, then every other
    evaluator at toy size on the digits stand-ins."""
    base = smoke.get_config()
    return dataclasses.replace(
        base,
        name="smoke_all",
        evaluations=base.evaluations
        + (
            evaluation("few_shot", shots=(1, 5), draws=3),
            evaluation(
                "chexpert", data="chexpert:digits", num_l2=12, bootstrap_samples=200
            ),
            evaluation(
                "imagenet_ood",
                data="digits_0to4",
                sets=("imagenet_c",),
                corruptions=("gaussian_noise", "contrast", "pixelate"),
                severities=(1, 3, 5),
            ),
            evaluation("calibration", data="digits_0to4"),
        ),
    )
