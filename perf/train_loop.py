"""Training throughput: this project's custom loop vs keras `Model.fit`,
in two modes, measured in one run.

Same model (the config's ResNet-50), same input pipeline
(zoo.input_pipeline), same optimizer (SGD, Nesterov momentum, the config's
schedule) and the same machine. The first epoch of each (tracing, pipeline
warm-up) is excluded; images/s is over the remaining epochs together (their
images over their summed seconds; a digits epoch lasts under a second, too
short to time alone), training steps only. The baseline compiles the same
architecture with softmax cross-entropy and runs `fit` with
steps_per_execution equal to the epoch length (allowed on one device).

Modes:
  holdout     both evaluate the holdout after every epoch (the trainer's
              default; `fit` gets it as validation_data); evaluation time
              is excluded from both.
  no_holdout  neither evaluates: holdout_fraction 0 for ours, no
              validation_data for `fit`.

Same model means the same architecture, variables and math; the two
differ in how a step runs. The custom loop trains batch norm through
TensorFlow's fused kernel (zoo.models.layers.BatchNormalization, config
field fused_batch_norm), where `fit` runs Keras's composite BatchNormalization
ops, and runs 1x1 convolutions as one MatMul over batch and space
(zoo.models.layers.Conv2D, matmul_pointwise_conv), where `fit` runs oneDNN's
convolution kernels (results agree to float rounding: tests/test_models.py);
its SGD is the same update rule as Keras's in one fused kernel per variable
(zoo/optimizers.py). It also adds weight decay and updates the EMA of the
weights every step, which the baseline does not. `--ablation` adds two
measurements, the custom loop with both kernel choices off (Keras's layers,
as `fit` runs them: the loop alone) and with only matmul_pointwise_conv off,
so the share of the loop and of each kernel are printed; `--xla` adds the
custom loop with jit_compile on (XLA is off by default on CPU for both: its
CPU convolutions are slower than oneDNN's on all but the smallest models).
The variants are measured alternately (--rounds times per mode) and the
medians compared, so that drift of a shared machine hits them alike.

Measured figures are in docs/training.md.

Command:
  .venv/bin/python perf/train_loop.py            # digits config, 20 epochs, 5 rounds
  .venv/bin/python perf/train_loop.py --config=imagenette --epochs=4 \\
      --dataset=path/to/imagenette --max_per_class=100 --ablation
  .venv/bin/python perf/train_loop.py --config=imagenette --epochs=4 \\
      --dataset=path/to/imagenette --max_per_class=300 --image_size=32 \\
      --width_multiplier=0.25 --rounds=3     # the mini-zoo's training runs
  --batch_size, --precision (both loops; auto is mixed_float16 on GPU) and
  --jit_compile=auto|on|off (both loops; auto is on on GPU) set what
  perf/gpu.sh measures.
Prints the throughputs and the ratio ours / fit per mode (target: >= 1.1).
"""

import argparse
import statistics
import tempfile
import time

import keras
import tensorflow as tf

from zoo import data as zoo_data
from zoo import distribute, input_pipeline
from zoo.configs import load_config
from zoo.models import create_classifier
from zoo.objectives import create_objective
from zoo.trainer import WarmupExponentialDecay, train_and_evaluate


def ours(config):
    """Returns the images/s of the custom loop over its epochs after the first."""
    with tempfile.TemporaryDirectory() as workdir:
        result = train_and_evaluate(config, workdir, report=lambda line: None)
    later = result.info["history"][1:]
    images = result.info["steps_per_epoch"] * config.global_batch_size * len(later)
    return images / sum(h["seconds"] for h in later)


class _EpochTimer(keras.callbacks.Callback):
    """Times each epoch's training steps only: from the epoch's start to its
    last training batch, before validation."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self._last - self._start)


def keras_fit(config, validate=True):
    """Returns the images/s of `Model.fit` over its epochs after the first."""
    dataset = zoo_data.load_dataset(config.dataset, data_dir=config.data_dir)
    data = input_pipeline.split_train_holdout(config, dataset)
    steps = data.num_train // config.global_batch_size
    dataset_fn = input_pipeline.train_dataset_fn(config, data, steps)
    # Repeated, so that fit's last call never meets the end of the data.
    train = dataset_fn(tf.distribute.InputContext()).repeat()
    # Both evaluate the holdout after every epoch, as training does.
    holdout = data.holdout.map(
        lambda e: (zoo_data.eval_preprocess(e["image"], config.image_size), e["label"])
    ).batch(config.eval_batch_size)
    keras.utils.set_random_seed(config.seed)
    kind = _device_kind()
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(
        distribute.resolve_precision(config.precision, kind)
    )
    try:  # The same precision as the custom loop; logits cast to float32.
        full = create_classifier(
            config.arch,
            create_objective("softmax"),
            dataset.num_classes,
            width_multiplier=config.width_multiplier,
        )
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    logits = keras.layers.Activation("linear", dtype="float32")(full.output["logits"])
    model = keras.Model(full.input, logits)
    schedule = WarmupExponentialDecay(
        config.base_learning_rate * config.global_batch_size / 256,
        int(config.warmup_epochs * steps),
        steps,
        config.lr_decay_per_epoch,
    )
    model.compile(
        optimizer=keras.optimizers.SGD(
            schedule, momentum=config.momentum, nesterov=True
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=steps,
        jit_compile=distribute.resolve_jit_compile(config.jit_compile, kind),
    )
    timer = _EpochTimer()
    model.fit(
        train,
        epochs=config.epochs,
        steps_per_epoch=steps,
        validation_data=holdout if validate else None,
        callbacks=[timer],
        verbose=0,
    )
    later = timer.seconds[1:]
    return steps * config.global_batch_size * len(later) / sum(later)


def _device_kind():
    """Returns "GPU" when TensorFlow sees one, else "CPU"."""
    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


def _tristate(value):
    return {"auto": None, "on": True, "off": False}[value]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="digits")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--max_per_class", type=int, default=None)
    parser.add_argument("--dataset", default=None, help="overrides the config's")
    parser.add_argument("--image_size", type=int, default=None, help="overrides")
    parser.add_argument(
        "--width_multiplier", type=float, default=None, help="overrides"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternating fit/ours measurements"
    )
    parser.add_argument(
        "--modes", default="holdout,no_holdout", help="holdout, no_holdout or both"
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also measure the custom loop with Keras's layers (fused_batch_norm "
        "and matmul_pointwise_conv off) and with matmul_pointwise_conv off",
    )
    parser.add_argument(
        "--xla",
        action="store_true",
        help="also measure the custom loop with jit_compile on (off by default "
        "on CPU; fit's default on CPU is off too)",
    )
    parser.add_argument("--batch_size", type=int, default=None, help="overrides")
    parser.add_argument(
        "--precision",
        default="auto",
        help="both loops: auto (float32 on CPU, mixed_float16 on GPU), float32, "
        "mixed_float16 or mixed_bfloat16",
    )
    parser.add_argument(
        "--jit_compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="XLA for both loops: auto is on on GPU, off on CPU",
    )
    args = parser.parse_args()
    base = load_config(args.config).replace(
        objective="softmax",
        epochs=args.epochs,
        max_per_class=args.max_per_class,
        precision=args.precision,
        jit_compile=_tristate(args.jit_compile),
    )
    for field in ("dataset", "image_size", "width_multiplier"):
        if getattr(args, field) is not None:
            base = base.replace(**{field: getattr(args, field)})
    if args.batch_size is not None:
        base = base.replace(global_batch_size=args.batch_size)
    kind = _device_kind()
    print(
        f"device: {kind}, config {args.config}, {base.arch} x{base.width_multiplier} "
        f"{base.image_size}px, batch {base.global_batch_size}, precision "
        f"{distribute.resolve_precision(base.precision, kind)}, XLA "
        f"{'on' if distribute.resolve_jit_compile(base.jit_compile, kind) else 'off'}"
    )
    ratios = {}
    for mode in args.modes.split(","):
        if mode not in ("holdout", "no_holdout"):
            parser.error(f"unknown mode {mode}; use holdout or no_holdout")
        validate = mode == "holdout"
        config = base if validate else base.replace(holdout_fraction=0.0)
        # Alternate the variants so that drift of a shared machine hits all alike.
        fits, mines, plains, convs, xlas = [], [], [], [], []
        for round_ in range(1, args.rounds + 1):
            fits.append(keras_fit(config, validate))
            mines.append(ours(config))
            line = (
                f"[{mode}] round {round_}: fit {fits[-1]:8.1f} images/s, ours "
                f"{mines[-1]:8.1f} images/s, ratio {mines[-1] / fits[-1]:.2f}"
            )
            if args.ablation:
                plains.append(
                    ours(
                        config.replace(
                            fused_batch_norm=False, matmul_pointwise_conv=False
                        )
                    )
                )
                convs.append(ours(config.replace(matmul_pointwise_conv=False)))
                line += (
                    f"; ours with Keras's layers {plains[-1]:8.1f}, with Keras's "
                    f"conv {convs[-1]:8.1f} images/s"
                )
            if args.xla:
                xlas.append(ours(config.replace(jit_compile=True)))
                line += f"; ours with XLA {xlas[-1]:8.1f} images/s"
            print(line, flush=True)
        baseline, mine = statistics.median(fits), statistics.median(mines)
        ratios[mode] = mine / baseline
        print(f"[{mode}] keras Model.fit : {baseline:8.1f} images/s (median)")
        print(f"[{mode}] zoo custom loop : {mine:8.1f} images/s (median)")
        if args.ablation:
            plain, conv = statistics.median(plains), statistics.median(convs)
            print(
                f"[{mode}] zoo loop, Keras's layers: {plain:8.1f} images/s (median), "
                f"ratio to fit {plain / baseline:.2f}: the loop alone"
            )
            print(
                f"[{mode}] zoo loop, Keras's conv: {conv:8.1f} images/s (median): "
                f"the fused batch norm adds x{conv / plain:.2f}, the 1x1 "
                f"convolutions as matrix products x{mine / conv:.2f}"
            )
        if args.xla:
            xla = statistics.median(xlas)
            print(
                f"[{mode}] zoo loop with XLA: {xla:8.1f} images/s (median), ratio "
                f"to fit {xla / baseline:.2f} (not the CPU default)"
            )
        print(f"[{mode}] ratio ours / fit: {ratios[mode]:.2f}", flush=True)
    print(
        "ratios ours / fit: "
        + ", ".join(f"{m} {r:.2f}" for m, r in ratios.items())
        + " (target >= 1.1)"
    )


if __name__ == "__main__":
    main()
