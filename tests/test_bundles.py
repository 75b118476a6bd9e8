"""Results bundles end to end, on real modules and real commands:
zoo-submit -> bundle -> zoo-leaderboard verify (re-running a sample) ->
tampering caught naming the row -> merge -> the leaderboard shows the module;
and a sharded plan of 2 modules x 2 datasets whose 4 shards merge to exactly
the rows of the unsharded runs, a re-run shard changing nothing."""

import json
import os
import subprocess

import pytest
import tensorflow as tf

from benchmark.results import bundle as bundles
from benchmark.results import leaderboard

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow  # a submission, two verifications with re-runs, a merge
def test_submit_verify_tamper_merge_round_trip(exported_module, tmp_path, warm):
    module = exported_module[0]
    out = tmp_path / "bundle"
    refused = warm.run("benchmark.cli.submit", f"--module={module}", f"--bundle={out}")
    assert refused.returncode == 2 and "others cannot fetch" in refused.stderr
    assert not out.exists()
    made = warm.run(
        "benchmark.cli.submit",
        f"--module={module}",
        "--config=smoke",
        "--evaluations=linear_probe,knn",
        "--set=linear_probe.num_l2=9",  # recorded, so the re-runs use it too
        f"--bundle={out}",
        "--local",
    )
    assert made.returncode == 0, made.stderr
    assert sorted(os.listdir(out)) == sorted(bundles.FILES)
    b = bundles.read(str(out))
    assert b.manifest["module_sha256"] == exported_module[1]
    assert b.manifest["datasets"] and b.manifest["handle"] == module
    assert {r["evaluation"] for r in b.rows} == {"linear_probe", "knn"}
    for row in b.rows:  # per-example predictions behind each accuracy
        assert len(b.predictions[leaderboard.row_key(row)]) == int(row["test_size"])

    # Re-runs in-process: the sandbox has its own tests (tests/test_sandbox.py).
    quick = "--rerun_sandbox=off"
    ok = warm.run("benchmark.cli.leaderboard", "verify", str(out), "--rerun=all", quick)
    assert ok.returncode == 0, ok.stderr
    assert "| knn | digits_5to9 |" in ok.stdout and "FAIL" not in ok.stdout

    # A value changed by hand: the attestation names the row.
    rows_path = out / "rows.csv"
    original = rows_path.read_text()
    row = b.rows[0]
    tampered = original.replace(f",{row['value']},", ",0.999,", 1)
    assert tampered != original
    rows_path.write_text(tampered)
    bad = warm.run("benchmark.cli.leaderboard", "verify", str(out), "--rerun=none")
    assert bad.returncode == 1
    fails = [line for line in bad.stderr.splitlines() if line.startswith("FAIL:")]
    assert fails == [
        f"FAIL: row 2 ({row['evaluation']} {row['dataset']} {row['split']} "
        f"{row['metric']}): changed since the bundle was attested"
    ]
    # A forger who also recomputes the attestation is caught by the re-run.
    forged = bundles.read(str(out))
    bundles.write(str(out), forged.rows, forged.predictions, forged.manifest)
    caught = warm.run(
        "benchmark.cli.leaderboard", "verify", str(out), "--rerun=all", quick
    )
    assert caught.returncode == 1
    fails = [line for line in caught.stderr.splitlines() if line.startswith("FAIL:")]
    assert len(fails) == 1 and "bundle 0.999, re-run" in fails[0], caught.stderr
    assert row["evaluation"] in fails[0]
    # Bad input is 2.
    missing = warm.run("benchmark.cli.leaderboard", "verify", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "not found" in missing.stderr

    # Merge the honest bundle (restored) and see the module on the board.
    rows_path.write_text(original)
    honest = bundles.read(str(out))
    bundles.write(str(out), honest.rows, honest.predictions, honest.manifest)
    board = tmp_path / "board.csv"
    merged = warm.run(
        "benchmark.cli.leaderboard", "merge", str(out), f"--leaderboard={board}"
    )
    assert merged.returncode == 0, merged.stderr
    assert len(leaderboard.read_rows(str(board))) == len(honest.rows)
    shown = warm.run("benchmark.cli.leaderboard", f"--leaderboard={board}")
    assert shown.returncode == 0 and "cosine_softmax" in shown.stdout
    # Merging again is a no-op; a conflicting value is refused, nothing written.
    assert (
        warm.run(
            "benchmark.cli.leaderboard", "merge", str(out), f"--leaderboard={board}"
        ).returncode
        == 0
    )
    before = board.read_text()
    other = tmp_path / "other"
    changed = [dict(r, value="0.5") if i == 0 else r for i, r in enumerate(honest.rows)]
    bundles.write(str(other), changed, honest.predictions, honest.manifest)
    conflict = warm.run(
        "benchmark.cli.leaderboard", "merge", str(other), f"--leaderboard={board}"
    )
    assert conflict.returncode == 1 and "already" in conflict.stderr
    assert board.read_text() == before


class Features(tf.Module):
    def __init__(self, seed):
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([48, 16], seed=[seed, 1]))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        x = tf.reshape(tf.image.resize(images, [4, 4]), [-1, 48])
        return tf.nn.relu(tf.matmul(x, self.w))


SAME = [c for c in leaderboard.COLUMNS if c not in bundles.VOLATILE]


@pytest.mark.slow  # 4 shard jobs, 2 unsharded runs, a no-op re-run
def test_four_shards_merge_to_the_unsharded_rows(tmp_path, warm):
    modules = []
    for seed in (1, 2):
        path = str(tmp_path / f"module{seed}")
        tf.saved_model.save(Features(seed), path)
        modules.append(path)
    common = ["--config=local", "--datasets=digits_5to9,digits", "--evaluations=knn"]
    common += ["--image_size=16", "--sandbox=off"]
    root = tmp_path / "bundles"
    for index in range(4):
        shard = warm.run(
            "benchmark.cli.benchmark",
            *common,
            f"--modules={','.join(modules)}",
            f"--bundle_root={root}",
            f"--shard={index}/4",
            f"--cache_dir={tmp_path / 'cache'}",
        )
        assert shard.returncode == 0, shard.stderr
        assert "[plan] 4 jobs, shard" in shard.stdout and "runs 1" in shard.stdout
    paths = sorted(str(root / p) for p in os.listdir(root) if (root / p).is_dir())
    assert len(paths) == 4
    stamps = {p: os.stat(os.path.join(p, "rows.csv")).st_mtime_ns for p in paths}
    again = warm.run(
        "benchmark.cli.benchmark",
        *common,
        f"--modules={','.join(modules)}",
        f"--bundle_root={root}",
        "--shard=2/4",
    )
    assert again.returncode == 0 and "done already" in again.stdout
    assert stamps == {
        p: os.stat(os.path.join(p, "rows.csv")).st_mtime_ns for p in paths
    }
    merged = tmp_path / "merged.csv"
    result = warm.run(
        "benchmark.cli.leaderboard", "merge", *paths, f"--leaderboard={merged}"
    )
    assert result.returncode == 0, result.stderr
    unsharded = tmp_path / "unsharded.csv"
    for module in modules:
        run = warm.run(
            "benchmark.cli.benchmark",
            *common,
            f"--module={module}",
            f"--leaderboard={unsharded}",
        )
        assert run.returncode == 0, run.stderr

    def rows(path):
        return sorted(
            json.dumps([r[c] for c in SAME]) for r in leaderboard.read_rows(str(path))
        )

    assert len(rows(merged)) == 4
    assert rows(merged) == rows(unsharded)


def test_matrix_shards_partition_the_runs():
    from benchmark.runner.plan import parse_shard
    from pipeline.matrix import MatrixConfig, run_configs, shard_cells

    matrix = MatrixConfig(objectives=("softmax", "sigmoid", "focal"), seeds=(0, 1))
    cells = [name for name, _ in run_configs(matrix)]
    parts = [[n for n, _ in shard_cells(run_configs(matrix), (i, 4))] for i in range(4)]
    assert sorted(sum(parts, [])) == sorted(cells) and len(cells) == 6
    assert all(not set(a) & set(b) for a in parts for b in parts if a is not b)
    assert parse_shard("3/4") == (3, 4) and parse_shard(None) == (0, 1)
    for bad in ("4/4", "-1/2", "a/b", "1"):
        with pytest.raises(ValueError, match="must be I/N"):
            parse_shard(bad)


def test_the_launchers_run_the_same_sharded_command():
    slurm = os.path.join(REPO, "launchers", "slurm_benchmark.sh")
    k8s = os.path.join(REPO, "launchers", "k8s_benchmark_job.yaml")
    assert subprocess.run(["bash", "-n", slurm]).returncode == 0
    slurm_text, k8s_text = open(slurm).read(), open(k8s).read()
    assert '--shard="${SLURM_ARRAY_TASK_ID}/${SHARDS}"' in slurm_text
    assert "#SBATCH --array=0-7" in slurm_text
    assert "--shard=${JOB_COMPLETION_INDEX}/8" in k8s_text
    assert "completionMode: Indexed" in k8s_text and "completions: 8" in k8s_text
    for text in (slurm_text, k8s_text):
        assert "zoo-benchmark --config=paper" in text and "--bundle_root=" in text
        assert "zoo-leaderboard merge" in text


def _local_bundle(tmp_path, handle):
    """A bundle of one measured row whose handle and datasets are folders of
    this machine, as a study's bundles are."""
    from zoo.provenance import code_version

    row = leaderboard.make_row(
        source="measured",
        handle=handle,
        module_sha256="ab" * 32,
        objective="softmax",
        pretrain_dataset=f"imagefolder:{tmp_path}/data/imagenette",
        evaluation="linear_probe",
        dataset=f"imagefolder:{tmp_path}/data/cifar10/",
        split="test",
        metric="accuracy",
        value=0.5,
        fingerprint="abc",
    )
    manifest = {
        "format_version": bundles.FORMAT_VERSION,
        "code_version": code_version(),
        "module_sha256": "ab" * 32,
    }
    out = tmp_path / "bundles" / "one"
    bundles.write(str(out), [row], {leaderboard.row_key(row): [1, 0]}, manifest)
    return out


def test_portable_merge_keeps_no_folder_of_this_machine(tmp_path):
    from benchmark.runner.submissions import MergeConflict, merge, portable_spec

    assert portable_spec("imagefolder:/a/b/cifar10/") == "imagefolder:cifar10"
    assert portable_spec("chexpert:/x/nih1000") == "chexpert:nih1000"
    assert portable_spec("/a/b/imagenette") == "imagefolder:imagenette"
    assert portable_spec("cifar10") == "cifar10"
    assert portable_spec("tfds:oxford_iiit_pet") == "tfds:oxford_iiit_pet"
    bundle = _local_bundle(tmp_path, str(tmp_path / "runs" / "modules" / "m"))
    board = tmp_path / "board.csv"
    assert merge(str(board), [str(bundle)], portable=True) == 1
    (row,) = leaderboard.read_rows(str(board))
    assert row["handle"] == os.path.join("runs", "modules", "m")
    assert row["dataset"] == "imagefolder:cifar10"
    assert row["pretrain_dataset"] == "imagefolder:imagenette"
    assert str(tmp_path) not in board.read_text()
    # Without --portable the rows keep the machine's folders, as bundles do.
    plain = tmp_path / "plain.csv"
    merge(str(plain), [str(bundle)])
    assert str(tmp_path) in plain.read_text()
    # A local module outside the board's folder is refused, nothing written.
    elsewhere = tmp_path / "sub" / "board.csv"
    with pytest.raises(MergeConflict) as refused:
        merge(str(elsewhere), [str(bundle)], portable=True)
    (line,) = refused.value.problems
    assert "is a local path outside" in line and "publish the module" in line
    assert not elsewhere.exists()
