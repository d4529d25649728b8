"""Alignment plots (PNG, matplotlib Agg): the paper's figure 6 (per-layer bars), figure 5 (PCA of each
modality's unembedding space coloured by k-means cluster) and figures 7-9 (per LLM layer, one PCA of the
modalities' hidden states together, coloured by modality)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def mean_score(scores: dict[str, float], topk: int) -> float:
    """The average of the metrics on a 0..1 scale (`lcs_knn`, a length 0..k, divided by k)."""
    vals = [v / topk if k == "lcs_knn" else v for k, v in scores.items()]
    return float(np.mean(vals))


def layer_bars(report: dict[str, Any], path: Path) -> Path:
    """Figure 6: per LLM layer, the averaged kernel-alignment score of language~vision vs
    language~vision+audio, one panel per pooling."""
    plt = _pyplot()
    poolings = list(report["embedding"])
    fig, axes = plt.subplots(1, len(poolings), figsize=(6 * len(poolings), 3.5), squeeze=False)
    for ax, pooling in zip(axes[0], poolings, strict=True):
        pairs = report["embedding"][pooling]
        width = 0.8 / len(pairs)
        for j, (pair, per_layer) in enumerate(pairs.items()):
            ys = [mean_score(s, report["topk"]) for s in per_layer]
            ax.bar(np.arange(len(ys)) + j * width, ys, width, label=pair)
        ax.set_xlabel("LLM layer (0 = input embeddings)")
        ax.set_ylabel("mean alignment score")
        ax.set_title(f"{pooling}-token pooling, N={report['n']}, k={report['topk']}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def pca_clusters(features: dict[str, np.ndarray], path: Path, clusters: int = 5, seed: int = 0) -> Path:
    """Figure 5: each space projected on its first two principal components, coloured by k-means."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(features), figsize=(4 * len(features), 3.6), squeeze=False)
    for ax, (name, x) in zip(axes[0], features.items(), strict=True):
        k = max(1, min(clusters, len(x)))
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
        xy = PCA(n_components=2, random_state=seed).fit_transform(x)
        ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=12)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


MODALITY_COLOURS = {"language": "tab:blue", "vision": "tab:orange", "audio": "tab:green", "vision+audio": "tab:green"}


def pca_layers(
    emb: dict[str, np.ndarray], path: Path, groups: tuple[str, ...], pooling: str = "avg", seed: int = 0
) -> Path:
    """Figures 8 (groups language, vision, audio) and 9 (language, vision+audio): per LLM layer, the groups'
    pooled hidden states ([n_layers + 1, N, D] each, from `embedding_features`) projected together on their
    first two principal components, coloured by modality (paper colours). Overlap = alignment."""
    from sklearn.decomposition import PCA

    plt = _pyplot()
    n_layers = emb[f"{groups[0]}/{pooling}"].shape[0]
    cols = min(n_layers, 5)
    rows = (n_layers + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for layer in range(rows * cols):
        ax = axes[layer // cols][layer % cols]
        ax.set_xticks([])
        ax.set_yticks([])
        if layer >= n_layers:
            ax.axis("off")
            continue
        parts = [emb[f"{g}/{pooling}"][layer] for g in groups]
        xy = PCA(n_components=2, random_state=seed).fit_transform(np.concatenate(parts))
        start = 0
        for g, x in zip(groups, parts, strict=True):
            ax.scatter(
                xy[start : start + len(x), 0], xy[start : start + len(x), 1], s=8, c=MODALITY_COLOURS[g], label=g
            )
            start += len(x)
        ax.set_title(f"layer {layer}", fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{' / '.join(groups)}: PCA per LLM layer ({pooling}-token pooling)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
