"""The tree's layers (docs/architecture.md), read from every import (ast,
function-level imports included): zoo -> export -> benchmark -> pipeline,
nothing imported upstream; inside benchmark/ each layer imports only those
below it (or itself); absl flags only in entry points. A second test plants
violations in a copy of the tree and sees each one reported."""

import ast
import os
import shutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("zoo", "export", "benchmark", "pipeline")
# benchmark/'s layers, bottom to top; the package's own __init__ (the API)
# stands above them all.
LAYERS = (
    "stats",
    "data",
    "modules",
    "features",
    "analyses",
    "evaluators",
    "configs",
    "results",
    "report",
    "runner",
    "cli",
)
# Where absl flags may be used: entry points and their flag helpers.
FLAG_FILES = ("zoo/cli.py", "export/flags.py")
FLAG_EXCEPTIONS = {
    # Reads tensorflow_hub's own --tfhub_cache_dir, as hub's resolver does.
    "export/catalog.py",
}


def _is_entry_point(rel):
    return (
        rel.endswith(("/main.py", "_main.py"))
        or rel.startswith("benchmark/cli/")
        or rel in FLAG_FILES
        or rel in FLAG_EXCEPTIONS
    )


def _targets(tree):
    """Yields (line, imported module name) for every import in `tree`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _layer(parts):
    """Returns the layer index of benchmark module path `parts` (after
    "benchmark"), the top for the package itself."""
    if parts and parts[0] in LAYERS:
        return LAYERS.index(parts[0])
    return len(LAYERS)


def violations(root):
    """Returns one line per import that breaks the layering under `root`."""
    found = []
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(root, package)):
            for name in sorted(files):
                if not name.endswith(".py"):
                    continue
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read(), rel)
                source = rel[:-3].split("/")
                for line, target in _targets(tree):
                    found += _check(rel, line, source, target.split("."))
    return found


def _check(rel, line, source, target):
    where = f"{rel}:{line} imports {'.'.join(target)}"
    if target[0] == "absl" and (len(target) == 1 or target[1] in ("flags", "app")):
        return (
            []
            if _is_entry_point(rel)
            else [f"{where}: absl flags outside entry points"]
        )
    if target[0] not in PACKAGES:
        return []
    if PACKAGES.index(target[0]) > PACKAGES.index(source[0]):
        return [f"{where}: {source[0]} is upstream of {target[0]}"]
    if source[0] == target[0] == "benchmark":
        below, above = _layer(target[1:]), _layer(source[1:-1] or source[1:])
        if source[1:] == ["__init__"]:
            above = len(LAYERS)
        if below > above:
            return [
                f"{where}: an upward import ({LAYERS[above]} < {'.'.join(target[:2])})"
            ]
    return []


def test_the_tree_keeps_its_layers():
    assert violations(REPO) == []


def test_benchmark_has_at_most_eight_top_level_files():
    top = [n for n in os.listdir(os.path.join(REPO, "benchmark")) if n.endswith(".py")]
    assert len(top) <= 8, sorted(top)
    assert set(LAYERS) <= set(os.listdir(os.path.join(REPO, "benchmark")))


def test_a_planted_violation_is_caught(tmp_path):
    for package in PACKAGES:
        shutil.copytree(
            os.path.join(REPO, package),
            tmp_path / package,
            ignore=shutil.ignore_patterns(
                "__pycache__", "*.json", "*.html", "*.css", "*.js"
            ),
        )
    assert violations(str(tmp_path)) == []
    plants = {
        "benchmark/stats/metrics.py": "from benchmark.runner import harness\n",
        "benchmark/results/gate.py": "def f():\n    from absl import flags\n",
        "zoo/data/base.py": "import benchmark.results.leaderboard\n",
        "export/archive.py": "from pipeline import study\n",
    }
    for rel, text in plants.items():
        with open(tmp_path / rel, "a") as f:
            f.write("\n" + text)
    found = violations(str(tmp_path))
    assert len(found) == len(plants), found
    for rel in plants:
        assert any(line.startswith(rel) for line in found), (rel, found)
