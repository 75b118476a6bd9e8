"""Figures of the representation analyses: CKA heatmaps (the paper's
Figure 3) and per-layer curves (R^2, sparsity, NC1) with one line per
module. Written atomically through benchmark.report.plot.save_figure."""

import json

import numpy as np

from benchmark.report.plot import new_figure, save_figure


def cka_heatmap(pair, path):
    """Writes the layer x layer CKA matrix of one module pair to `path`."""
    matrix = np.asarray(pair["matrix"])
    size = max(4.0, 0.35 * max(matrix.shape) + 2.0)
    figure = new_figure(figsize=(size + 1.0, size))
    axes = figure.subplots()
    image = axes.imshow(
        matrix, vmin=0.0, vmax=1.0, cmap="magma", origin="lower", aspect="auto"
    )
    axes.set_xticks(
        range(len(pair["layers_b"])), pair["layers_b"], rotation=90, fontsize=6
    )
    axes.set_yticks(range(len(pair["layers_a"])), pair["layers_a"], fontsize=6)
    axes.set_xlabel(pair["b"])
    axes.set_ylabel(pair["a"])
    axes.set_title(f"linear CKA: {pair['a']} vs {pair['b']}", fontsize=9)
    figure.colorbar(image, ax=axes, shrink=0.8)
    save_figure(figure, path)


def layer_curves(by_module, ylabel, title, path):
    """Writes one line per module of {module: {layer: value}} (layers in
    network order) to `path`."""
    figure = new_figure(figsize=(9, 4.5))
    axes = figure.subplots()
    longest = []
    for key, values in by_module.items():
        layers = list(values)
        longest = layers if len(layers) > len(longest) else longest
        axes.plot(
            range(len(layers)), [values[n] for n in layers], marker="o", ms=3, label=key
        )
    axes.set_xticks(range(len(longest)), longest, rotation=90, fontsize=6)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    save_figure(figure, path)


def heatmap_pairs(pairs):
    """Returns the CKA pairs drawn as heatmaps: each pair of distinct modules
    once (a < b), or the single pair of a one-module analysis."""
    return [p for p in pairs if p["a"] < p["b"] or len(pairs) == 1]


def write_json(path, data):
    """Writes `data` as JSON to `path` atomically, creating its folder."""
    from zoo.files import write_atomic

    write_atomic(path, json.dumps(data, indent=1, sort_keys=True))
