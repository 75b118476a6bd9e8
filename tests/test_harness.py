"""The single harness: the one evaluator registry swept, the shipped configs,
the override syntax, the smoke config end to end on a real module, and
one-line errors for fetches and messages."""

import http.server
import importlib
import inspect
import json
import math
import os
import threading

import numpy as np
import pytest

from benchmark.configs import list_configs
from benchmark.configs.config import (
    BenchmarkConfig,
    Evaluation,
    apply_overrides,
    evaluation,
    load_config,
)
from benchmark.evaluators import (
    EVALUATORS,
    Evaluator,
    create_evaluator,
    list_evaluators,
)
from benchmark.modules.loading import ModuleError, load_module
from benchmark.results import leaderboard
from benchmark.runner.harness import run_benchmark
from zoo.data.base import clip_words

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- registry


def test_the_registry_holds_every_evaluation_family():
    assert list_evaluators() == [
        "calibration",
        "chexpert",
        "class_separation",
        "few_shot",
        "fine_tune",
        "imagenet_ood",
        "knn",
        "linear_probe",
    ]


@pytest.mark.parametrize("name", list_evaluators())
def test_every_evaluator_keeps_the_contract(name):
    cls = EVALUATORS.get(name)
    assert issubclass(cls, Evaluator) and cls.name == name
    params = inspect.signature(cls.__init__).parameters
    assert all(p.kind == p.KEYWORD_ONLY for k, p in params.items() if k != "self")
    assert "data" in params and "Args:" in cls.__doc__
    for arg in params:  # Every argument is documented in the class docstring.
        assert arg == "self" or f"{arg}:" in cls.__doc__, (name, arg)
    evaluator = create_evaluator(name, data="digits_5to9")
    protocol = evaluator.protocol()
    assert json.loads(json.dumps(protocol)) == protocol
    assert protocol["evaluator"] == name and "data" not in protocol
    assert set(protocol) == {"evaluator", *params} - {"self", "data"}
    assert set(evaluator.requires) <= {"features", "logits", "fine_tuning"}


@pytest.mark.parametrize(
    "name, settings, message",
    [
        ("linear_probe", {"num_l2": 0}, "num_l2 must be a positive integer"),
        ("linear_probe", {"l2_min": -1.0}, "0 < min <= max"),
        ("knn", {"chunk_size": 0}, "chunk_size must be a positive integer"),
        ("knn", {"ks": ()}, "at least one candidate k"),
        ("fine_tune", {"steps": 0}, "steps must be a positive integer"),
        ("fine_tune", {"learning_rates": (-0.1,)}, "learning rates must be positive"),
        ("chexpert", {"settings": ("test",)}, "unknown Chexpert setting"),
        ("imagenet_ood", {"sets": ("imagenet_z",)}, "unknown ImageNet-OOD set"),
        ("imagenet_ood", {"severities": (6,)}, "severities must be in 1..5"),
        ("calibration", {"heldout_fraction": 1.5}, "heldout_fraction must be"),
        ("class_separation", {"max_per_class": 0}, "max_per_class must be"),
        ("few_shot", {"shots": ()}, "at least one number of shots"),
        ("few_shot", {"l2s": (0.0,)}, "l2s must be positive"),
    ],
)
def test_bad_settings_fail_when_built(name, settings, message):
    with pytest.raises(ValueError, match=message):
        create_evaluator(name, **settings)


# ------------------------------------------------------------------ configs


@pytest.mark.parametrize("name", list_configs())
def test_every_config_builds_and_documents_its_command(name):
    config = load_config(name)
    module = importlib.import_module(f"benchmark.configs.{name}")
    assert "Command:" in module.__doc__ and "Expected:" in module.__doc__
    assert f"--config={name}" in module.__doc__
    if not config.datasets:
        config = config.replace(datasets=("digits_5to9",))
    evaluators = config.evaluators()
    assert evaluators and all(isinstance(e, Evaluator) for e in evaluators)
    assert "../shared" not in module.__doc__ and "/work/" not in module.__doc__


def test_the_shipped_configs_cover_the_papers_protocol():
    assert {"smoke", "smoke_all", "local", "paper"} <= set(list_configs())
    everything = load_config("smoke_all")
    assert {e.evaluator for e in everything.evaluations} == set(list_evaluators())
    # smoke keeps what makes sense on its digits for any module.
    smoke = {e.evaluator for e in load_config("smoke").evaluations}
    assert smoke == {"linear_probe", "knn", "class_separation", "fine_tune"}
    paper = load_config("paper").evaluators()
    per_dataset = [e.data for e in paper if e.name == "linear_probe"]
    assert len(per_dataset) == 8
    assert {e.name for e in paper} == set(list_evaluators())
    (separation,) = [e for e in paper if e.name == "class_separation"]
    assert (separation.data, separation.split) == ("imagenet2012", "train")
    (chexpert,) = [e for e in paper if e.name == "chexpert"]
    assert chexpert.settings == ("valid", "iid")


def test_a_config_file_path_loads(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        "from benchmark.configs.config import BenchmarkConfig, evaluation\n"
        "def get_config():\n"
        "    return BenchmarkConfig(name='mine', evaluations=(evaluation('knn'),),\n"
        "                           datasets=('digits_5to9',))\n"
    )
    config = load_config(str(path))
    assert config.name == "mine" and config.evaluators()[0].data == "digits_5to9"
    with pytest.raises(ValueError, match="unknown benchmark config 'nope'.*smoke"):
        load_config("nope")
    with pytest.raises(ValueError, match="not found"):
        load_config(str(tmp_path / "missing.py"))


# ---------------------------------------------------------------- overrides


def _config():
    return BenchmarkConfig(
        name="t",
        datasets=("digits_5to9",),
        evaluations=(
            evaluation("linear_probe"),
            evaluation("knn", weighted=False),
            evaluation("chexpert", data="chexpert:digits"),
        ),
    )


def test_overrides_set_fields_and_evaluator_settings():
    config = apply_overrides(
        _config(),
        [
            "max_per_class=7",
            "datasets=digits_5to9,tfds:cifar10",
            "knn.weighted=true",
            "knn.ks=1,3",
            "linear_probe.num_l2=[3]",  # JSON list for an int: refused at build.
            "chexpert.data=chexpert:/data/x",
            "chexpert.settings=valid",
        ],
    )
    assert config.max_per_class == 7
    assert config.datasets == ("digits_5to9", "tfds:cifar10")
    knn = [e for e in config.evaluations if e.evaluator == "knn"][0]
    assert knn.settings == {"weighted": True, "ks": (1, 3)}
    chexpert = [e for e in config.evaluations if e.evaluator == "chexpert"][0]
    assert chexpert.data == "chexpert:/data/x"
    assert chexpert.settings == {"settings": ("valid",)}
    with pytest.raises(ValueError, match="num_l2 must be a positive integer"):
        config.evaluators()
    good = apply_overrides(_config(), ["max_per_class=7", "knn.weighted=true"])
    built = good.evaluators()
    assert [e.data for e in built] == ["digits_5to9", "digits_5to9", "chexpert:digits"]
    assert built[0].max_per_class == 7 and built[1].weighted is True


@pytest.mark.parametrize(
    "item, message",
    [
        ("max_per_class", "is not KEY=VALUE"),
        ("=3", "is not KEY=VALUE"),
        ("bogus=3", "unknown config field 'bogus'"),
        ("name=x", "unknown config field 'name'"),
        ("max_per_class=-2", "max_per_class must be a positive integer"),
        ("batch_size=big", "batch_size must be a positive integer"),
        ("nope.k=1", "unknown evaluator 'nope'"),
        ("knn.kk=1", "knn takes no setting 'kk'; its settings are data"),
        ("fine_tune.steps=3", "config t does not run fine_tune"),
    ],
)
def test_bad_overrides_name_the_problem(item, message):
    with pytest.raises(ValueError, match=message) as error:
        apply_overrides(_config(), [item])
    assert "\n" not in str(error.value)


def test_only_filters_and_names_what_a_config_runs():
    assert [e.name for e in _config().evaluators(only=["knn"])] == ["knn"]
    with pytest.raises(ValueError, match="has no evaluation fine_tune; it runs"):
        _config().evaluators(only=["fine_tune"])
    empty = BenchmarkConfig(name="e", evaluations=(Evaluation("knn"),))
    with pytest.raises(ValueError, match="--datasets"):
        empty.evaluators()


# -------------------------------------------------------------- end to end


@pytest.mark.slow  # Every evaluator on a trained module (exported_module).
def test_smoke_all_writes_rows_for_every_registered_evaluator(
    exported_module, tmp_path
):
    # Every evaluator's rows, not its numbers: the sweeps shrunk to seconds.
    shrunk = ["fine_tune.steps=5", "fine_tune.max_per_class=10"]
    shrunk += ["linear_probe.num_l2=9", "chexpert.num_l2=4"]
    shrunk += ["chexpert.bootstrap_samples=50"]
    config = apply_overrides(load_config("smoke_all"), shrunk)
    lines, stages = [], []
    rows = run_benchmark(
        config,
        exported_module[0],
        cache_dir=str(tmp_path / "cache"),
        timings=stages,
        report=lines.append,
    )
    assert {r["evaluation"] for r in rows} == set(list_evaluators())
    # Where the time went (perf/benchmark_cost.py): every stage, in run order,
    # each extraction once, each evaluator's fit without its extractions.
    names = [name for name, _ in stages]
    assert names.index("module load and scan") < names.index("module profile")
    assert names.index("module profile") < min(
        i for i, n in enumerate(names) if n.startswith(("features ", "fit "))
    )
    fits = [n[len("fit ") :] for n in names if n.startswith("fit ")]
    assert fits == [e.name for e in config.evaluators()]
    features = [n for n in names if n.startswith("features ")]
    computed = [n for n in features if not n.endswith("(from the disk cache)")]
    assert computed and len(computed) == len(set(computed)), features
    for name in features:  # a second look is the disk cache's, never a rerun
        assert name.replace(" (from the disk cache)", "") in computed
    assert all(s >= 0 for _, s in stages)
    by_fit = {r["evaluation"]: float(r["seconds"]) for r in rows}
    for name in fits:  # a fit's share is within its evaluator's seconds
        assert dict(stages)[f"fit {name}"] <= by_fit[name] + 1e-3
    assert not [line for line in lines if line.startswith("[skip]")]
    for row in rows:
        assert math.isfinite(float(row["value"]))
        assert row["module_sha256"] == exported_module[1]
        protocol = json.loads(row["protocol"])
        assert protocol["config"] == "smoke_all"
        assert protocol["input"]["image_size"] == 32
    leaderboard.append_rows(str(tmp_path / "board.csv"), rows)
    assert len(leaderboard.read_rows(str(tmp_path / "board.csv"))) == len(rows)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set=knn.kk=1"], "knn takes no setting 'kk'"),
        (["--set=oops"], "is not KEY=VALUE"),
        (["--evaluations=bogus"], "config smoke has no evaluation bogus"),
        (["--config=nope"], "unknown benchmark config 'nope'"),
        (["--config=local"], "pass --datasets"),
        (
            ["--config=smoke_all", "--sandbox=off"]  # data before the module
            + ["--set=chexpert.data=chexpert:/nonexistent"],
            "is not a directory",
        ),
        (["--image_size=-8"], "--image_size must be positive"),
        (["--leaderboard=/"], "is a directory"),
        (["--cache_dir=/etc/hostname", "--evaluations=knn"], "is a file, not"),
    ],
)
def test_cli_bad_config_input_is_one_line(tmp_path, warm, args, message):
    board = tmp_path / "board.csv"
    result = warm.run(
        "benchmark.cli.benchmark",
        f"--module={tmp_path}",  # exists (not a module): the config fails first
        f"--leaderboard={board}",
        *args,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not board.exists()
    assert result.stderr.strip().splitlines() == errors


# ------------------------------------------------------------------ errors


def test_an_http_error_names_the_status(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub_cache"))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/no/such/module"
        with pytest.raises(ModuleError, match="HTTP 404") as error:
            load_module(url)
    finally:
        server.shutdown()
        server.server_close()
    assert "without network" not in str(error.value)


def test_messages_are_clipped_at_word_boundaries():
    text = " ".join(f"word{i}" for i in range(200))
    clipped = clip_words(text, 100)
    assert len(clipped) <= 100 and clipped.endswith(" ...")
    assert clipped[: -len(" ...")] in text
    assert text.startswith(clipped[: -len(" ...")] + " ")  # Ends on a whole word.
    assert clip_words("short  message\n", 100) == "short message"


@pytest.mark.slow  # exported_module trains a model first.
def test_the_context_gives_cached_outputs_of_any_endpoint(exported_module, tmp_path):
    from benchmark.evaluators.context import EvaluationContext

    module = load_module(exported_module[0])
    names = module.endpoint_names()
    assert {"stem", "pre_logits", "logits"} <= set(names)
    context = EvaluationContext(
        module, cache_dir=str(tmp_path / "cache"), report=lambda line: None
    )
    data = context.dataset("digits_5to9")
    features = context.features(data, "test", max_per_class=5)
    pre_logits = context.features(
        data, "test", max_per_class=5, output="endpoint:pre_logits"
    )
    np.testing.assert_allclose(pre_logits.features, features.features, atol=1e-5)
    stem = context.features(data, "test", max_per_class=5, output="endpoint:stem")
    assert stem.features.shape[0] == 25 and stem.features.shape[1] < 64
    logits = context.features(data, "test", max_per_class=5, output="logits")
    assert logits.features.shape == (25, 5)
    assert len(os.listdir(tmp_path / "cache")) == 4  # One entry per output.
    with pytest.raises(ModuleError, match="no endpoint 'block9'.*pre_logits"):
        context.features(data, "test", max_per_class=5, output="endpoint:block9")
