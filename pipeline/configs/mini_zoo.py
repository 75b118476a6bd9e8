"""Mini-zoo: the paper's study in miniature on real images. All eleven
objectives x 3 seeds of ResNet-50 (width x1/4) at 32 px on Imagenette, and
two arms of variants, each x 3 seeds:

  temperature      cosine softmax at tau = 0.01, 0.02, 0.03, 0.08, 0.15,
                   0.3 and 0.6 beside the objectives' 0.05 (the paper sweeps
                   0.01-0.08, R^2 0.24-0.77; at this scale 0.01-0.15 gave R^2
                   0.11-0.17 only, rising from 0.03 on, so 0.3 and 0.6 reach
                   for the paper's range);
  length           softmax, squared error and cosine softmax (tau = 0.05)
                   on every Imagenette training image for 10 epochs, about
                   4x the objectives' training (9,469 x 10 against 3,000 x 8
                   images).

Each module is then scored through the single harness, like any
submitter's (benchmark/configs/mini_zoo.py, vtab1k.py and full_transfer.py;
one results bundle per module and config in WORKDIR/bundles/), and the
analyses:

  source accuracy  the module's own classifier on Imagenette val (top-1);
  transfer         CIFAR-10 linear probe, kNN and a short fine-tuning run;
  Chexpert         mean AUC of the five pathologies (linear probe per label);
  R^2              class separation on the pretraining (Imagenette) train set;
  analyses         per block on Imagenette val: linear CKA against the
                   softmax module of the same seed, sparsity and NC1;
  few-shot         the VTAB-1k protocol on CIFAR-10 (benchmark/configs/
                   vtab1k.py) at full size: the linear probe on 1,000
                   training images and 1/5/10/25-shot ridge probes, both
                   tested on the whole test split. Its fine-tuning (3 x 2,500
                   steps of 512 images) is left out: on 2 CPU cores it would
                   take about 100 minutes per module;
  full transfer    the linear probe and kNN on the whole transfer set
                   (CIFAR-10: 50,000 train, 10,000 test), for the power
                   the 2,000-image test split lacks.
The per-seed analyses cover the eleven objectives.

Command (image folders ROOT/{train,val}/<class>/*; TFDS names work too):
  zoo-matrix --config=mini_zoo --dataset=path/to/imagenette \\
      --transfer=path/to/cifar10 --chexpert=chexpert:path/to/chexpert \\
      --workdir=runs/mini_zoo
  zoo-reproduce --workdir=runs/mini_zoo --out=docs/reproduction.md
Rerun the same zoo-matrix command after an interruption: finished trainings,
exports, benchmarks and analyses are skipped (`--shard=I/N` splits the work
across machines). On a GPU or TPU, widen it: --width_multiplier=1
--image_size=224 --max_per_class=0 --epochs=40 (the paper's recipe needs
ImageNet; see docs/reproduction.md).
Expected on 2 CPU cores: about 4 minutes per 8-epoch module and about 8 per
long-arm module, 5-6 hours for the 63 (docs/reproduction.md records the
measured time and every outcome).
"""

from benchmark.analyses.config import AnalysisConfig
from benchmark.configs.config import load_config as load_benchmark_config
from benchmark.runner.request import RunRequest
from pipeline.matrix import MatrixConfig
from zoo.objectives import list_objectives


def benchmark_request(matrix):
    """Returns the run request of the mini-zoo benchmark (benchmark/configs/
    mini_zoo.py) on the study's data: its rows and bundle are what
    `zoo-benchmark --config=mini_zoo` with the same flags would give."""
    source = matrix.source_dataset()
    overrides = [f"imagenet_ood.data={source}", f"class_separation.data={source}"]
    evaluations = None
    if matrix.chexpert:  # the NIH / CheXpert X-rays; without them, no Chexpert
        overrides.append(f"chexpert.data={matrix.chexpert}")
    else:
        evaluations = tuple(
            e.evaluator
            for e in load_benchmark_config("mini_zoo").evaluations
            if e.evaluator != "chexpert"
        )
    return RunRequest(
        config="mini_zoo",
        datasets=(matrix.transfer,),
        overrides=tuple(overrides),
        evaluations=evaluations,
    )


def benchmark_config(matrix):
    """Returns the BenchmarkConfig that benchmark_request runs."""
    request = benchmark_request(matrix)
    config = request.load_config()
    if request.evaluations:
        kept = tuple(
            e for e in config.evaluations if e.evaluator in request.evaluations
        )
        config = config.replace(evaluations=kept)
    return config


def benchmark_configs(matrix):
    """Returns the run requests every module is scored with, in turn: the
    mini-zoo benchmark; VTAB-1k on the transfer set without its
    fine-tuning (rows say config=vtab1k); the linear probe and kNN on the
    whole transfer set (benchmark/configs/full_transfer.py)."""
    return (
        benchmark_request(matrix),
        RunRequest(
            config="vtab1k",
            datasets=(matrix.transfer,),
            evaluations=("linear_probe", "few_shot"),
        ),
        RunRequest(config="full_transfer", datasets=(matrix.transfer,)),
    )


TEMPERATURES = (0.01, 0.02, 0.03, 0.08, 0.15, 0.3, 0.6)
LONG = ("softmax", "squared_error", "cosine_softmax")


def variants():
    """Returns the arms' cells: cosine softmax temperatures, and the
    long-schedule runs."""
    out = {
        f"cosine_softmax_t{t}": {
            "objective": "cosine_softmax",
            "objective_hparams": {"temperature": t},
        }
        for t in TEMPERATURES
    }
    for objective in LONG:
        out[f"{objective}_long"] = {
            "objective": objective,
            "max_per_class": None,  # every training image
            "epochs": 10,
        }
    return out


ARMS = {
    "objectives": {
        "labels": tuple(list_objectives()),
        "paper": r"[a-z_]+",  # the paper's objectives at their defaults
    },
    "temperature": {
        "labels": (
            "cosine_softmax_t0.01",
            "cosine_softmax_t0.02",
            "cosine_softmax_t0.03",
            "cosine_softmax",  # tau = 0.05
            "cosine_softmax_t0.08",
            "cosine_softmax_t0.15",
            "cosine_softmax_t0.3",
            "cosine_softmax_t0.6",
        ),
        "paper": r"cosine_softmax\(tau=[0-9.]+\)",
    },
    "length": {
        "labels": tuple(f"{o}_long" for o in LONG),
        "paper": r"softmax|squared_error|cosine_softmax",
    },
}


def analysis_config(matrix):
    """Returns the per-block analyses run on each seed's modules together."""
    return AnalysisConfig(
        name="mini_zoo",
        dataset=matrix.source_dataset(),
        split="val",
        analyses={"cka": {"batch_size": 250}, "sparsity": {}, "neural_collapse": {}},
        max_per_class=50,
        batch_size=100,
    )


def get_config():
    return MatrixConfig(
        config="imagenette",
        objectives=tuple(list_objectives()),
        seeds=(0, 1, 2),
        workdir="runs/mini_zoo",
        overrides=dict(
            image_size=32,
            width_multiplier=0.25,
            max_per_class=300,
            epochs=8,
        ),
        transfer="tfds:cifar10",
        chexpert=None,  # --chexpert=chexpert:DIR (a CheXpert-format folder)
        benchmark=benchmark_configs,
        analysis=analysis_config,
        reference="softmax",
        variants=variants(),
        arms=ARMS,
    )
