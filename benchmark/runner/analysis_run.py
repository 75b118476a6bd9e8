"""Running the representation analyses end to end (what zoo-analyze and
studies call): load the modules, stream the dataset through them
(benchmark/runner/analyze.py), write each analysis's JSON and figures, and append
the scalar results to a leaderboard with full provenance."""

import os
import re

from benchmark.report.analysis_plots import heatmap_pairs, write_json


def module_keys(modules):
    """Returns a short unique name per module: arch_objective_seed from its
    metadata, else its folder name."""
    keys = []
    for module in modules:
        meta = module.metadata
        if meta.get("objective"):
            arch, seed = meta.get("arch", "module"), meta.get("seed", "")
            key = f"{arch}_{meta['objective']}_seed{seed}"
        else:
            key = os.path.basename(os.path.normpath(module.handle)) or "module"
        key = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)
        base, n = key, 2
        while key in keys:
            key, n = f"{base}_{n}", n + 1
        keys.append(key)
    return keys


def run_analyses(
    config,
    analyses,
    handles,
    out,
    *,
    leaderboard_path=None,
    load=None,
    data_dir=None,
    report=lambda line: print(line, flush=True),
):
    """Runs built `analyses` of `config` over the modules `handles`, writes
    the JSON and figures to folder `out` and appends the scalar results to
    `leaderboard_path` (None or "": none); returns the rows."""
    import time

    from benchmark.data.transfer import load_benchmark_dataset
    from benchmark.modules.loading import load_module, parse_value_range
    from benchmark.report.analysis_plots import cka_heatmap, layer_curves
    from benchmark.results import leaderboard
    from benchmark.runner.analyze import analyze
    from benchmark.runner.harness import base_row

    dataset = load_benchmark_dataset(config.dataset, data_dir=data_dir)
    load = dict(load or {})
    load["value_range"] = parse_value_range(load.get("value_range"))
    loaded = [load_module(handle, **load) for handle in handles]
    keys = module_keys(loaded)
    modules = dict(zip(keys, loaded))
    for key, module in modules.items():
        report(f"[module] {key}: {module.handle} sha256 {module.sha256[:12]}")
    start = time.perf_counter()
    results, total = analyze(
        modules,
        dataset,
        config.split,
        analyses,
        max_per_class=config.max_per_class,
        batch_size=config.batch_size,
        report=report,
    )
    seconds = round(time.perf_counter() - start, 3)
    os.makedirs(out, exist_ok=True)
    written = write_outputs(results, out, cka_heatmap, layer_curves)
    rows = []
    for name, result in results.items():
        analysis = next(a for a in analyses if a.name == name)
        for key, metric, value, extra in result.scalars:
            module = modules[key]
            protocol = dict(
                analysis.protocol(),
                config=config.name,
                input=module.contract(),
                **{k: modules[v].handle for k, v in extra.items()},
            )
            rows.append(
                leaderboard.make_row(
                    **base_row(module),
                    evaluation=name,
                    dataset=dataset.name,
                    split=config.split,
                    test_size=total,
                    metric=metric,
                    value=value,
                    protocol=protocol,
                    seconds=seconds,
                )
            )
    if leaderboard_path and rows:
        leaderboard.append_rows(leaderboard_path, rows)
        transfer = transfer_figure(leaderboard_path, modules, out)
        written += [transfer] if transfer else []
    for path in written:
        report(f"[analyze] wrote {path}")
    where = f" to {leaderboard_path}" if leaderboard_path else " (no leaderboard)"
    report(f"{len(rows)} rows appended{where}; {len(written)} files in {out}")
    return rows


def write_outputs(results, out, cka_heatmap, layer_curves):
    """Writes each result's JSON and figures; returns the paths."""
    written = []
    for name, result in results.items():
        path = os.path.join(out, f"{name}.json")
        write_json(path, result.data)
        written.append(path)
    if "cka" in results:
        data = results["cka"].data
        for pair in heatmap_pairs(data["pairs"]):
            path = os.path.join(out, f"cka_{pair['a']}__{pair['b']}.png")
            cka_heatmap(pair, path)
            written.append(path)
        path = os.path.join(out, "summary.json")
        write_json(path, {"same_layer_cka_mean": data["summary"]})
        written.append(path)
    curves = {
        "class_separation": ("class separation R^2", lambda v: v),
        "sparsity": ("fraction of non-zero activations", lambda v: v),
        "neural_collapse": ("NC1", lambda v: v["nc1"]),
    }
    for name, (ylabel, pick) in curves.items():
        if name not in results:
            continue
        by_module = {
            key: {layer: pick(v) for layer, v in values.items()}
            for key, values in results[name].data["modules"].items()
        }
        path = os.path.join(out, f"{name}.png")
        layer_curves(by_module, ylabel, f"{name} per layer", path)
        written.append(path)
    return written


def transfer_figure(board, modules, out):
    """Writes transfer_vs_r2.png when the leaderboard has R^2 and linear
    probe rows for at least one of `modules`; returns its path or None."""
    from benchmark.report.plot import plot_transfer_vs_separation, separation_points
    from benchmark.results import leaderboard

    shas = {m.sha256 for m in modules.values()}
    rows = leaderboard.read_rows(board)
    measured = [
        r for r in rows if r["module_sha256"] in shas or r["source"] != "measured"
    ]
    points = separation_points(measured)
    if not points["measured"]:
        return None
    path = os.path.join(out, "transfer_vs_r2.png")
    plot_transfer_vs_separation(measured, path)
    return path
