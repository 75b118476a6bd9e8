"""Neural collapse (Papyan, Han and Donoho 2020; Zhou et al. 2022) of every
layer with labels, from streamed sufficient statistics.

With h a layer's (spatially averaged) output, mu_k the mean of class k, mu_G
the mean over all N examples and K classes:

  Sigma_W = (1/N) sum_k sum_{i in k} (h_i - mu_k)(h_i - mu_k)^T
          = (1/N) (sum_i h_i h_i^T - sum_k N_k mu_k mu_k^T)
  Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k - mu_G)^T
  NC1 = tr(Sigma_W pinv(Sigma_B)) / K          (within-class variability)

On the module's classifier W (K x d, one row per class) where it exposes
one (zoo modules; imported authors' modules), with W_c = W minus its mean
row, H = [mu_1 - mu_G, ..., mu_K - mu_G] (d x K), E = (I_K - 11^T/K)/sqrt(K-1)
the simplex equiangular tight frame's normalised Gram:

  NC2 = || W_c W_c^T / ||W_c W_c^T||_F - E ||_F     (classifier -> simplex ETF)
  NC3 = || W_c H / ||W_c H||_F - E ||_F             (self-duality)
  NC4 = fraction of examples where argmax_k logits_k != argmin_k ||h - mu_k||
        (the network's prediction against the nearest class centre; a second
        pass once the means are known)

NC2-NC4 are measured on the feature vector (the classifier's input) only.
Conventions: pinv keeps the eigenvalues of Sigma_B above 1e-10 x its largest
(its rank is at most K - 1); the statistics are float64; W's row k is the
logit of label k.
"""

import numpy as np

from benchmark.analyses import ANALYSES
from benchmark.analyses.base import (
    FEATURES,
    Analysis,
    AnalysisError,
    AnalysisResult,
    as_float64,
)

LOGITS = "logits"  # key of the module's logits in the engine's outputs
PINV_RTOL = 1e-10


def simplex_etf(k):
    """Returns E = (I_K - 11^T/K) / sqrt(K-1), of unit Frobenius norm."""
    return (np.eye(k) - np.ones((k, k)) / k) / np.sqrt(k - 1)


def nc1(sigma_w, sigma_b, k):
    """Returns tr(Sigma_W pinv(Sigma_B)) / K (module docstring convention)."""
    values, vectors = np.linalg.eigh(sigma_b)
    keep = values > PINV_RTOL * max(values.max(), 1e-300)
    inverse = (vectors[:, keep] / values[keep]) @ vectors[:, keep].T
    return float(np.trace(sigma_w @ inverse) / k)


def _distance_to_etf(matrix):
    return float(
        np.linalg.norm(matrix / np.linalg.norm(matrix) - simplex_etf(len(matrix)))
    )


def nc2(w):
    """Returns NC2 of the [K, d] classifier `w`."""
    wc = w - w.mean(axis=0, keepdims=True)
    return _distance_to_etf(wc @ wc.T)


def nc3(w, centred_means):
    """Returns NC3 of `w` [K, d] and the centred class means [K, d]."""
    wc = w - w.mean(axis=0, keepdims=True)
    return _distance_to_etf(wc @ centred_means.T)


class Moments:
    """Streamed per-class sums, counts and the total second moment."""

    def __init__(self):
        self.sums, self.counts, self.second, self.n = {}, {}, None, 0

    def add(self, h, labels):
        self.second = h.T @ h if self.second is None else self.second + h.T @ h
        self.n += len(h)
        for label in np.unique(labels):
            rows = h[labels == label]
            self.sums[label] = self.sums.get(label, 0.0) + rows.sum(axis=0)
            self.counts[label] = self.counts.get(label, 0) + len(rows)

    def statistics(self):
        """Returns (labels, class means [K, d], mu_G, Sigma_W, Sigma_B)."""
        labels = sorted(self.sums)
        means = np.stack([self.sums[k] / self.counts[k] for k in labels])
        counts = np.array([self.counts[k] for k in labels], dtype=np.float64)
        mu_g = (means * counts[:, None]).sum(axis=0) / self.n
        sigma_w = (self.second - (means.T * counts) @ means) / self.n
        centred = means - mu_g
        sigma_b = centred.T @ centred / len(labels)
        return labels, means, mu_g, sigma_w, sigma_b


@ANALYSES.register("neural_collapse")
class NeuralCollapse(Analysis):
    """NC1 at every layer, NC2-NC4 on the feature vector (module docstring)."""

    name = "neural_collapse"
    needs_labels = True
    second_pass = True

    def conventions(self):
        return {
            "pinv": f"eigenvalues of Sigma_B above {PINV_RTOL:g} x the largest",
            "Sigma_W": "1/N over all examples",
            "Sigma_B": "1/K over class means, around the global mean",
            "nc2_nc3_nc4": "on the feature vector, with the module's own classifier",
            "dtype": "float64",
        }

    def start(self, layers):
        super().start(layers)
        self.moments = {k: {n: Moments() for n in v} for k, v in self.layers.items()}
        self.disagree = dict.fromkeys(self.layers, 0)
        self.seen = dict.fromkeys(self.layers, 0)
        self.centres = {}

    def update(self, outputs, labels):
        for key, names in self.layers.items():
            for name in names:
                self.moments[key][name].add(as_float64(outputs[key][name]), labels)

    def second(self, outputs, labels):
        del labels
        for key in self.layers:
            if FEATURES not in self.moments[key] or LOGITS not in outputs[key]:
                continue
            if key not in self.centres:
                classes, means, *_ = self.moments[key][FEATURES].statistics()
                self.centres[key] = (np.array(classes), means)
            classes, means = self.centres[key]
            h = as_float64(outputs[key][FEATURES])
            distances = (h**2).sum(1)[:, None] - 2 * h @ means.T + (means**2).sum(1)
            nearest = classes[np.argmin(distances, axis=1)]
            predicted = np.argmax(np.asarray(outputs[key][LOGITS]), axis=1)
            self.disagree[key] += int(np.sum(nearest != predicted))
            self.seen[key] += len(h)

    def finish(self, heads):
        data, scalars = {"protocol": self.protocol(), "modules": {}}, []
        for key, names in self.layers.items():
            found = {}
            for name in names:
                classes, means, mu_g, sigma_w, sigma_b = self.moments[key][
                    name
                ].statistics()
                if len(classes) < 2:
                    raise AnalysisError("neural_collapse needs at least 2 classes")
                found[name] = {"nc1": nc1(sigma_w, sigma_b, len(classes))}
                head = heads.get(key)
                if name == FEATURES and head is not None:
                    w = as_float64(head[0])
                    if max(classes) >= len(w):
                        found[name]["nc2_nc3_nc4"] = (
                            f"not measured: label {max(classes)} has no row in the "
                            f"{len(w)}-class classifier; analyse the module's own "
                            "pretraining classes"
                        )
                        continue
                    w = w[classes]
                    found[name]["nc2"] = nc2(w)
                    found[name]["nc3"] = nc3(w, means - mu_g)
                    if self.seen[key]:
                        found[name]["nc4"] = self.disagree[key] / self.seen[key]
            data["modules"][key] = found
            for name, values in found.items():
                scalars += [
                    (key, self.metric(m, name), v, {}) for m, v in values.items()
                ]
        return AnalysisResult(data=data, scalars=scalars)
