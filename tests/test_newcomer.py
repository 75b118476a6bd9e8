"""What a newcomer meets first: the installed package on its own, outside
the repository (the curated leaderboard, help texts, a short smoke run, bad
arguments refused before TensorFlow loads, quiet imports), rankings that
compare like with like, and guesses that speak up."""

import os
import re
import subprocess
import sys
import sysconfig

import pytest

import benchmark
from benchmark.evaluators import EVALUATORS
from benchmark.evaluators.base import Measurement
from benchmark.report import plot, views
from benchmark.results import leaderboard
from benchmark.runner.harness import probe_warnings
from tests.conftest import source_copy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIS = (
    "zoo-train",
    "zoo-export",
    "zoo-benchmark",
    "zoo-analyze",
    "zoo-submit",
    "zoo-leaderboard",
    "zoo-demo",
    "zoo-matrix",
    "zoo-pull",
    "zoo-reproduce",
)
# A path into this source tree, as help texts must not name one.
SOURCE_PATH = re.compile(r"\b(zoo|benchmark|export|pipeline|docs|tests|perf)/\w")
ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
# The installed package alone: nothing of this checkout on the path.
INSTALLED_ENV = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin folder, an empty working folder outside the repository) of a
    fresh virtual environment holding the built wheel; its dependencies come
    from this interpreter's site-packages (a path line, so this checkout's
    editable install is not seen)."""
    root = tmp_path_factory.mktemp("newcomer")
    wheels = root / "wheels"
    source = source_copy(root / "source")  # not the checkout's build/
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
         "--no-build-isolation", "-w", str(wheels), "-q"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (wheel,) = wheels.iterdir()
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        env=INSTALLED_ENV,
    )  # fmt: skip (outside the checkout: its egg-info would pass for an install)
    assert install.returncode == 0, install.stderr
    assert "warning" not in (install.stdout + install.stderr).lower()  # quiet
    # Installed first: the dependencies' folder also holds this checkout's
    # editable install, which pip would take for this package.
    with open(os.path.join(site, "dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    work = root / "work"
    work.mkdir()
    return venv / "bin", work


def _run(bin_dir, work, *args, timeout=600):
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]],
        capture_output=True, text=True, cwd=work, env=INSTALLED_ENV, timeout=timeout,
    )  # fmt: skip


@pytest.mark.slow  # builds a wheel and a virtual environment
def test_the_installed_package_stands_alone(installed):
    bin_dir, work = installed
    python = str(bin_dir / "python")
    where = subprocess.run(
        [python, "-c", "import benchmark; print(benchmark.__file__)"],
        capture_output=True, text=True, cwd=work, env=INSTALLED_ENV,
    ).stdout  # fmt: skip
    assert "site-packages" in where and not where.startswith(REPO)
    # The curated leaderboard is in the package and is the default board.
    board = _run(bin_dir, work, "zoo-leaderboard")
    assert board.returncode == 0, board.stderr
    assert "cosine_softmax" in board.stdout and "paper" in board.stdout
    assert board.stdout.count("\n") > 26 and board.stderr == ""
    # Help texts name no path of the source tree.
    for cli in CLIS:
        text = _run(bin_dir, work, cli, "--help").stdout
        assert not SOURCE_PATH.search(text), (cli, SOURCE_PATH.search(text))
    # A missing board is "does not exist", not "no rows".
    missing = _run(bin_dir, work, "zoo-leaderboard", "--leaderboard=nope.csv")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    # LICENSE and a long description in the metadata.
    meta = subprocess.run(
        [python, "-c", "import importlib.metadata as m; d = m.distribution("
         "'loss-transfer-zoo'); print(d.metadata['License']); print(len(d.metadata"
         ".get_payload() or '')); print([f.name for f in d.files if 'LICENSE' in "
         "f.name])"],
        capture_output=True, text=True, env=INSTALLED_ENV,
    ).stdout.split("\n")  # fmt: skip
    assert meta[0] == "Apache-2.0" and int(meta[1]) > 1000 and "LICENSE" in meta[2]


@pytest.mark.slow
def test_a_smoke_run_from_the_install_is_short_and_sensible(installed):
    bin_dir, work = installed
    module = work / "module"
    made = subprocess.run(
        [str(bin_dir / "python"), "-m", "benchmark.cli.ci_module", str(module)],
        capture_output=True, text=True, cwd=work, env=INSTALLED_ENV, timeout=300,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    run = _run(bin_dir, work, "zoo-benchmark", f"--module={module}", "--image_size=16")
    assert run.returncode == 0, run.stderr
    lines = (run.stdout + run.stderr).strip().splitlines()
    assert len(lines) < 40, "\n".join(lines)
    text = "\n".join(lines)
    assert "chexpert" not in text and "imagenet_ood" not in text  # not on digits
    assert "normalised unit (default: the module declares none)" in text
    assert "input 16 px (as passed)" in text
    assert "WARNING" not in text and "oneDNN" not in text  # TensorFlow is quiet
    assert (work / "runs" / "leaderboard.csv").is_file()


TF_AT_EXIT = (
    "import atexit, sys; atexit.register(lambda: print('tensorflow loaded:', "
    "'tensorflow' in sys.modules, file=sys.stderr)); sys.argv = ['zoo-benchmark'] "
    "+ sys.argv[1:]; from benchmark.cli.benchmark import run; run()"
)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--module=/no/such/module"], "module /no/such/module not found"),
        (["--module=.", "--config=smok"], "did you mean smoke"),
        (["--module=.", "--input_normalization=rgb"], "unknown input normalisation"),
        (["--module=.", "--value_range=1,0"], "low < high"),
        (
            ["--module=authors_resnet50_softmax_sed0"],
            "did you mean authors_resnet50_softmax_seed0",
        ),
    ],
)
def test_bad_arguments_fail_before_tensorflow_loads(args, message, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", TF_AT_EXIT, *args],
        capture_output=True, text=True, cwd=tmp_path, env=ENV, timeout=120,
    )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 2, done.stderr
    assert message in lines[0] and lines[1] == "tensorflow loaded: False"


def test_importing_the_packages_is_quiet(tmp_path):
    code = "import zoo.models, export.safety, benchmark.modules.loading, pipeline"
    done = subprocess.run(
        [sys.executable, "-c", code + "; import tensorflow as tf; tf.constant(1)"],
        capture_output=True, text=True, cwd=tmp_path, env=ENV, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_did_you_mean_for_datasets_and_registries():
    from benchmark.data.transfer import load_benchmark_dataset
    from zoo.data.base import DatasetError

    with pytest.raises(DatasetError, match="did you mean cifar10"):
        load_benchmark_dataset("cifar01")
    with pytest.raises(ValueError, match="did you mean linear_probe"):
        EVALUATORS.get("linear_prob")


# ------------------------------------------------------------ rankings


def _row(value, **fields):
    base = dict(
        source="measured", handle="m", module_sha256="abc", arch="resnet50",
        objective="softmax", pretrain_dataset="digits", evaluation="linear_probe",
        dataset="digits_5to9", split="train->test", metric="accuracy", seed="0",
        protocol={"evaluator": "linear_probe", "input": {"value_range": [0, 1]}},
    )  # fmt: skip
    base.update(fields)
    return leaderboard.make_row(value=value, **base)


def test_runs_differing_only_in_module_options_are_not_pooled_as_seeds():
    rows = [
        _row(0.99, protocol={"input": {"value_range": [0, 1]}}),
        _row(0.74, protocol={"input": {"value_range": [0, 255]}}),
    ]
    header, lines, stats = views.summary(rows)
    assert len(lines) == 2  # two configurations, one seed each
    assert {s.n for s in stats.values()} == {1}
    names = {line[1] for line in lines}
    assert len(names) == 2 and all(n.startswith("softmax [") for n in names)
    # Two real seeds of one configuration still pool.
    seeded = [_row(0.9), _row(0.8, seed="1", module_sha256="def", handle="m1")]
    _, lines, stats = views.summary(seeded)
    assert len(lines) == 1 and {s.n for s in stats.values()} == {2}


def test_a_toy_never_ranks_above_the_papers_imagenet_models():
    curated = leaderboard.read_rows(leaderboard.CURATED)
    toy = _row(0.99, objective="softmax", arch="resnet50", pretrain_dataset="digits",
               dataset="cifar10", protocol={"evaluator": "linear_probe",
                                            "max_per_class": 10})  # fmt: skip
    rows = curated + [toy]
    header, lines, _ = views.summary(rows)
    protocol = header.index("protocol")
    mine = [line for line in lines if line[3] == "measured"]
    assert mine and mine[0][0] == "1" and mine[0][protocol] == "B"
    first = lines[0]
    assert first[3] == "paper" and first[protocol] == "A"  # the paper's best leads
    groups = views.ranking_groups(rows)
    assert "measured here" in groups[1].reason


def test_the_r2_axis_says_which_data(tmp_path):
    rows = [
        _row(0.9, pretrain_dataset="imagenette"),
        _row(0.3, evaluation="class_separation", metric="r2", split="test",
             pretrain_dataset="imagenette"),
    ]  # fmt: skip
    points = plot.separation_points(rows)["measured"]
    assert [p.r2_on for p in points] == ["transfer"]  # digits, not imagenette
    assert plot.r2_axis_label(points) == (
        "class separation R^2 (measured on transfer data)"
    )
    pretraining = [dict(r, dataset="imagenette") for r in rows]
    points = plot.separation_points(pretraining)["measured"]
    assert plot.r2_axis_label(points) == "class separation R^2 (pretraining data)"


# --------------------------------------------------------- speaking up


def test_a_probe_at_chance_or_all_tied_warns_in_one_line():
    probe = EVALUATORS.create("linear_probe", num_l2=9)
    knn = EVALUATORS.create("knn")
    labels = {f"x{i}": [0, i % 5] for i in range(100)}  # always predicts class 0
    chance = Measurement("accuracy", 0.2, {"l2": 1.0, "ties": 1}, "d", "a->b",
                         predictions=labels)  # fmt: skip
    good = Measurement("accuracy", 0.85, {}, "d", "a->b")
    (line,) = probe_warnings([(probe, chance), (knn, good)])
    assert "at chance (20.0%, majority class 20.0%) while knn reaches 85.0%" in line
    assert "--input_normalization" in line
    tied = Measurement("accuracy", 0.9, {"l2": 1.0, "ties": 9}, "d", "a->b")
    (line,) = probe_warnings([(probe, tied)])
    assert "all 9 L2 values tie" in line
    fine = Measurement("accuracy", 0.8, {"ties": 1}, "d", "a->b", predictions=labels)
    assert probe_warnings([(probe, fine), (knn, good)]) == []


@pytest.mark.slow
def test_an_untrained_keras_model_is_scored_with_its_guesses_said(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV3Small(
        weights=None, include_top=False, pooling="avg", input_shape=(64, 64, 3)
    )
    path = str(tmp_path / "mobilenet.keras")
    model.save(path)
    lines = []
    results = benchmark.evaluate(
        path, config="smoke", evaluations=["linear_probe", "knn"], sandbox="off",
        name="untrained MobileNetV3", report=lines.append,
    )  # fmt: skip
    text = "\n".join(lines)
    assert "normalised 0_255 (Keras preprocessing layer" in text
    assert all(r["name"] == "untrained MobileNetV3" for r in results.rows)
    assert all(r["arch"] == "MobileNetV3Small" for r in results.rows)
    linear = results.value("linear_probe")
    knn = results.value("knn")
    if linear < 0.3 < knn:  # the scale trap the warning is for
        assert "[warn] linear_probe on digits_5to9" in text
    _, lines, _ = views.summary(results.rows, rank_by="knn")
    assert lines[0][1] == "untrained MobileNetV3"
