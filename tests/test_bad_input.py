"""Malformed input across every entry point, table-driven: each case must
print exactly one line on stderr (`error: ...` naming the problem), exit
with status 2, and leave its working directory and the shared inputs exactly
as they were (nothing half-written: no run folder, no leaderboard, no cache
entry, no temporary file).

The cases run in the warm Python of tests/warm.py: one Python that imports
TensorFlow once and runs each case's real entry point (`<module>.run()`, what
the console script calls) in a forked child, so 100 cases cost seconds, not
minutes.
"""

import hashlib
import io
import json
import os
import tarfile

import pytest
import tensorflow as tf

# One worker runs this file, so its module fixtures are built once
# (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("bad_input")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TRAIN = "zoo.main"
EXPORT = "export.main"
BENCH = "benchmark.cli.benchmark"
BOARD = "benchmark.cli.leaderboard"
MATRIX = "pipeline.matrix_main"
DEMO = "pipeline.demo_main"
PULL = "export.pull_main"
ANALYZE = "benchmark.cli.analyze"
SUBMIT = "benchmark.cli.submit"

W = "--workdir=run"
M = "--module={module}"
K = "--evaluations=knn"
MS = "--modules={module}"

# (id, entry module, arguments, a fragment the error line must contain).
# {name} is replaced by the path of the shared input `name` (see `inputs`).
CASES = [
    # zoo-train
    ("train_no_workdir", TRAIN, [], "--workdir must have a value"),
    ("train_unknown_config", TRAIN, [W, "--config=nope"], "nope"),
    ("train_negative_lr", TRAIN, [W, "--base_learning_rate=-0.1"], "finite number > 0"),
    ("train_absurd_lr", TRAIN, [W, "--base_learning_rate=1e9"], "diverges"),
    ("train_nan_lr", TRAIN, [W, "--base_learning_rate=nan"], "finite number > 0"),
    ("train_lr_text", TRAIN, [W, "--base_learning_rate=fast"], "--base_learning_rate"),
    ("train_hparams_list", TRAIN, [W, "--objective_hparams=[1,2]"], "JSON object"),
    (
        "train_hparams_broken",
        TRAIN,
        [W, "--objective_hparams={oops"],
        "objective_hparams",
    ),
    ("train_unknown_objective", TRAIN, [W, "--objective=bogus"], "bogus"),
    ("train_unknown_arch", TRAIN, [W, "--arch=bogus"], "bogus"),
    ("train_zero_batch", TRAIN, [W, "--global_batch_size=0"], "global_batch_size"),
    ("train_batch_text", TRAIN, [W, "--global_batch_size=many"], "--global_batch_size"),
    ("train_negative_epochs", TRAIN, [W, "--epochs=-1"], "epochs"),
    ("train_epochs_text", TRAIN, [W, "--epochs=abc"], "--epochs"),
    ("train_negative_size", TRAIN, [W, "--image_size=-8"], "image_size"),
    ("train_zero_width", TRAIN, [W, "--width_multiplier=0"], "width_multiplier"),
    ("train_workdir_is_file", TRAIN, ["--workdir={file}"], "{file}"),
    ("train_missing_folder", TRAIN, [W, "--config={missing_dir}"], "missing_dir"),
    ("train_inception_too_small", TRAIN, [W, "--arch=inception_v3"], "75 px"),
    ("train_unknown_flag", TRAIN, [W, "--epoch=3"], "epoch"),
    ("train_zero_steps_per_call", TRAIN, [W, "--steps_per_call=0"], "steps_per_call"),
    ("train_negative_holdout", TRAIN, [W, "--holdout_examples=-5"], "holdout"),
    # zoo-export
    ("export_no_checkpoint", EXPORT, ["--out=mod"], "--checkpoint"),
    (
        "export_missing_checkpoint",
        EXPORT,
        ["--checkpoint={missing_dir}", "--out=mod"],
        "",
    ),
    ("export_file_checkpoint", EXPORT, ["--checkpoint={file}", "--out=mod"], ""),
    ("export_not_a_run", EXPORT, ["--checkpoint={plain_dir}", "--out=mod"], ""),
    (
        "export_archive_text",
        EXPORT,
        ["--checkpoint={plain_dir}", "--archive=maybe"],
        "",
    ),
    # zoo-benchmark
    ("bench_no_module", BENCH, [], "pass --module=HANDLE"),
    ("bench_missing_module", BENCH, ["--module={missing_dir}", K], "not found"),
    ("bench_not_a_savedmodel", BENCH, ["--module={plain_dir}"], "no saved_model.pb"),
    ("bench_garbage_archive", BENCH, ["--module={garbage_tar}"], "not a readable tar"),
    (
        "bench_escaping_archive",
        BENCH,
        ["--module={evil_tar}"],
        "leaves the destination",
    ),
    ("bench_unknown_config", BENCH, [M, "--config=nope"], "unknown benchmark config"),
    ("bench_bad_setting", BENCH, [M, "--set=knn.kk=1"], "knn takes no setting 'kk'"),
    ("bench_not_key_value", BENCH, [M, "--set=oops"], "is not KEY=VALUE"),
    (
        "bench_unknown_evaluation",
        BENCH,
        [M, "--evaluations=bogus"],
        "no evaluation bogus",
    ),
    ("bench_local_no_datasets", BENCH, [M, "--config=local"], "pass --datasets"),
    (
        "bench_missing_dataset",
        BENCH,
        [M, "--config=local", "--datasets={missing_dir}"],
        "",
    ),
    ("bench_negative_size", BENCH, [M, K, "--image_size=-8"], "must be positive"),
    ("bench_size_text", BENCH, [M, K, "--image_size=big"], "--image_size"),
    ("bench_zero_batch", BENCH, [M, K, "--batch_size=0"], "batch_size"),
    ("bench_zero_per_class", BENCH, [M, K, "--max_per_class=0"], "max_per_class"),
    (
        "bench_board_is_dir",
        BENCH,
        [M, K, "--leaderboard={plain_dir}"],
        "is a directory",
    ),
    (
        "bench_board_read_only",
        BENCH,
        [M, K, "--leaderboard={readonly_csv}"],
        "read-only",
    ),
    (
        "bench_board_foreign",
        BENCH,
        [M, K, "--leaderboard={foreign_csv}"],
        "foreign header",
    ),
    (
        "bench_cache_is_file",
        BENCH,
        [M, K, "--cache_dir={file}"],
        "is a file, not a folder",
    ),
    ("bench_reversed_range", BENCH, [M, K, "--value_range=1,0"], "low < high"),
    ("bench_range_text", BENCH, [M, K, "--value_range=dark"], "got 'dark'"),
    ("bench_sandbox_mode", BENCH, [M, K, "--sandbox=maybe"], "--sandbox"),
    ("bench_sandbox_memory", BENCH, [M, K, "--sandbox_memory_gb=-1"], "sandbox_memory"),
    ("bench_module_limit", BENCH, [M, K, "--max_module_mb=-5"], "--max_module_mb"),
    ("bench_deadline", BENCH, [M, K, "--download_deadline_s=0"], "download_deadline"),
    ("bench_steps_zero", BENCH, [M, "--set=fine_tune.steps=0"], "steps"),
    ("bench_bad_strategy", BENCH, [M, K, "--strategy=bogus"], "bogus"),
    (
        "bench_unknown_signature",
        BENCH,
        [M, K, "--signature=nope", "--sandbox=off"],
        "nope",
    ),
    ("bench_unknown_output", BENCH, [M, K, "--output=nope", "--sandbox=off"], "nope"),
    # zoo-leaderboard
    ("board_is_dir", BOARD, ["--leaderboard={plain_dir}"], "is a directory"),
    ("board_foreign", BOARD, ["--leaderboard={foreign_csv}"], "foreign header"),
    (
        "board_plot_missing_dir",
        BOARD,
        ["--plot={missing_dir}/fig.png"],
        "does not exist",
    ),
    (
        "board_plot_at_root",
        BOARD,
        ["--plot=/zoo_no_such_dir/fig.png"],
        "does not exist",
    ),
    ("board_unknown_flag", BOARD, ["--htm=site"], "htm"),
    # zoo-matrix
    ("matrix_unknown_config", MATRIX, ["--config=nope", "--workdir=m"], "nope"),
    ("matrix_unknown_arch", MATRIX, ["--archs=bogus", "--workdir=m"], "bogus"),
    (
        "matrix_unknown_objective",
        MATRIX,
        ["--objectives=bogus", "--workdir=m"],
        "bogus",
    ),
    ("matrix_seed_text", MATRIX, ["--seeds=a,b", "--workdir=m"], "seed"),
    (
        "matrix_inception_at_32",
        MATRIX,
        ["--archs=inception_v3", "--workdir=m"],
        "75 px",
    ),
    ("matrix_negative_size", MATRIX, ["--image_size=-1", "--workdir=m"], "image_size"),
    # zoo-demo
    ("demo_negative_epochs", DEMO, ["--epochs=-1", "--workdir=d"], "epochs"),
    ("demo_unknown_arch", DEMO, ["--arch=bogus", "--workdir=d"], "bogus"),
    ("demo_missing_target", DEMO, ["--target={missing_dir}", "--workdir=d"], ""),
    # zoo-pull
    ("pull_no_name", PULL, [], "pass one module name"),
    ("pull_two_names", PULL, ["a", "b"], "pass one module name (got 2)"),
    ("pull_unknown_name", PULL, ["nonexistent_module"], "no module named"),
    (
        "pull_missing_catalog",
        PULL,
        ["--catalog={missing_dir}/c.json", "x"],
        "not found",
    ),
    ("pull_broken_catalog", PULL, ["--catalog={broken_catalog}", "x"], "unreadable"),
    (
        "pull_future_catalog",
        PULL,
        ["--catalog={future_catalog}", "x"],
        "catalog_version",
    ),
    ("pull_negative_limit", PULL, ["--max_module_mb=-1", "x"], "--max_module_mb"),
    # zoo-submit and bundles
    ("submit_local", SUBMIT, [M, "--bundle=b"], "others cannot fetch"),
    ("submit_bundle_is_file", SUBMIT, [M, "--bundle={file}", "--local"], "is a file"),
    ("submit_no_bundle", SUBMIT, [M], "--bundle must have a value"),
    ("verify_missing", BOARD, ["verify", "{missing_dir}"], "not found"),
    ("verify_not_a_bundle", BOARD, ["verify", "{plain_dir}"], "lacks"),
    ("merge_nothing", BOARD, ["merge"], "one or more bundles"),
    ("board_unknown_command", BOARD, ["publish"], "unknown command"),
    (
        "bench_bad_shard",
        BENCH,
        ["--modules={module}", "--bundle_root=r", "--shard=4/4"],
        "I/N",
    ),
    ("bench_plan_no_root", BENCH, ["--modules={module}"], "--bundle_root"),
    (
        "bench_bundle_not_bundle",
        BENCH,
        [M, K, "--bundle={plain_dir}"],
        "not a results bundle",
    ),
    # zoo-analyze
    ("analyze_no_out", ANALYZE, [MS], "--out must have a value"),
    ("analyze_no_modules", ANALYZE, ["--out=a"], "--modules must have a value"),
    ("analyze_out_is_file", ANALYZE, [MS, "--out={file}"], "is a file"),
    ("analyze_unknown_config", ANALYZE, [MS, "--out=a", "--config=nope"], "nope"),
    ("analyze_unknown_analysis", ANALYZE, [MS, "--out=a", "--analyses=ckaa"], "ckaa"),
    ("analyze_tiny_cka_batch", ANALYZE, [MS, "--out=a", "--set=cka.batch_size=2"], "4"),
    ("analyze_bad_set", ANALYZE, [MS, "--out=a", "--set=oops"], "KEY=VALUE"),
    ("analyze_unknown_field", ANALYZE, [MS, "--out=a", "--set=colour=1"], "colour"),
    ("analyze_missing_module", ANALYZE, ["--modules={missing_dir}", "--out=a"], ""),
    (
        "analyze_board_foreign",
        ANALYZE,
        [M, "--out=a", "--leaderboard={foreign_csv}"],
        "",
    ),
    (
        "analyze_missing_dataset",
        ANALYZE,
        [MS, "--out=a", "--dataset={missing_dir}"],
        "",
    ),
    ("analyze_bad_split", ANALYZE, [MS, "--out=a", "--split=nosuch"], "nosuch"),
]


class Features(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.ones([3, 4]))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        return tf.matmul(tf.reduce_mean(images, axis=[1, 2]), self.w)


def _tar_gz(name, data):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _fill(text, paths):
    """Replaces each {name} of a shared input by its path."""
    for name, path in paths.items():
        text = text.replace("{" + name + "}", path)
    return text


def _snapshot(root):
    """Returns {relative path: (mode, sha256 or None)} of everything below."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            mode = os.lstat(path).st_mode
            digest = None
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            seen[rel] = (mode, digest)
    return seen


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The shared inputs the cases name, written once."""
    root = tmp_path_factory.mktemp("bad_inputs")
    paths = {name: str(root / name) for name in ("file", "plain_dir", "module")}
    (root / "file").write_text("not a folder\n")
    (root / "plain_dir").mkdir()
    (root / "plain_dir" / "notes.txt").write_text("a folder, not a module\n")
    tf.saved_model.save(Features(), paths["module"])
    paths["missing_dir"] = str(root / "missing_dir")
    for name, data in (
        ("garbage_tar", b"this is not a tar archive"),
        ("evil_tar", _tar_gz("../escaped", b"x")),
    ):
        paths[name] = str(root / f"{name}.tar.gz")
        (root / f"{name}.tar.gz").write_bytes(data)
    paths["foreign_csv"] = str(root / "foreign.csv")
    (root / "foreign.csv").write_text("name,score\nx,1\n")
    from benchmark.results.leaderboard import COLUMNS

    paths["readonly_csv"] = str(root / "readonly.csv")
    (root / "readonly.csv").write_text(",".join(COLUMNS) + "\n")
    os.chmod(paths["readonly_csv"], 0o444)
    paths["broken_catalog"] = str(root / "broken.json")
    (root / "broken.json").write_text("{not json")
    paths["future_catalog"] = str(root / "future.json")
    (root / "future.json").write_text(json.dumps({"catalog_version": 99}))
    return root, paths


@pytest.fixture(scope="module")
def results(inputs, tmp_path_factory, warm):
    """Runs every case once; returns {id: (result, case dir, before, after)}."""
    root, paths = inputs
    before_inputs = _snapshot(root)
    out = {}
    for case_id, module, args, _ in CASES:
        cwd = tmp_path_factory.mktemp(f"case_{case_id}")
        (cwd / "tmp").mkdir()
        before = _snapshot(cwd)
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "TMPDIR": str(cwd / "tmp"),
            "TFHUB_CACHE_DIR": str(cwd / "hub_cache"),
            "ZOO_CATALOG": os.path.join(REPO, "export", "catalog.json"),
        }
        args = [_fill(a, paths) for a in args]
        result = warm.run(module, *args, cwd=cwd, env=env, timeout=300)
        out[case_id] = (result, before, _snapshot(cwd))
    assert _snapshot(root) == before_inputs, "a case changed the shared inputs"
    return out, paths


def test_there_are_at_least_sixty_cases_across_every_entry_point():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)
    entries = {TRAIN, EXPORT, BENCH, BOARD, MATRIX, DEMO, PULL, ANALYZE, SUBMIT}
    assert {c[1] for c in CASES} == entries


@pytest.mark.parametrize("case_id, fragment", [(c[0], c[3]) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(results, case_id, fragment):
    by_id, paths = results
    result, before, after = by_id[case_id]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert _fill(fragment, paths) in lines[0]
    assert result.returncode == 2, lines
    assert "Traceback" not in result.stderr
    assert after == before, sorted(set(after) ^ set(before))
