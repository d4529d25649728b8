"""Kernel-alignment metrics between two representation spaces (paper 4.2 and appendix B).

Definitions follow the Platonic Representation Hypothesis metrics (Huh et al. 2024), written here from their
published formulas. Inputs are paired feature matrices A [N, d_A] and B [N, d_B] (row i of A and row i of B
describe the same item); by default every row is L2-normalised first and kernels are inner products.

kNN metrics (k = `topk`, each item's k nearest neighbours by inner product, itself excluded, most similar
first; ties broken by the lower index):
- `mutual_knn`: mean over items of |kNN_A(i) ∩ kNN_B(i)| / k                                  (0..1)
- `cycle_knn`: fraction of items i that appear in kNN_A(j) for some j in kNN_B(i)               (0..1)
- `lcs_knn`: mean length of the longest common subsequence of the two ordered kNN lists         (0..k)
- `edit_distance_knn`: 1 - mean(levenshtein(kNN_A(i), kNN_B(i)) / k)                            (0..1)

Kernel metrics (K = A A^T, L = B B^T):
- `cka`: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with the biased HSIC tr(K H L H), H = I - 11^T / n
- `unbiased_cka`: the same with the unbiased HSIC estimator (Song et al. 2012; needs n >= 4)
- `cknna`: CKA restricted to mutual k-nearest-neighbour pairs: K and L are masked to the pairs (i, j) with
  j in both kNN lists of i, then the unbiased HSIC, normalised as in CKA (Huh et al. 2024, eq. in sec. 2)

Subspace metric:
- `svcca`: each matrix is centred and scaled per feature, reduced to its top `cca_dim` left singular
  vectors, and the mean canonical correlation between the two reduced spaces is returned. Deviation from
  the reference code (which uses a randomised low-rank SVD and sklearn's iterative CCA): an exact SVD, and
  the canonical correlations computed exactly as the singular values of U_A^T U_B (the singular vectors are
  orthonormal and centred, so these are the canonical correlations). Deterministic; tested against the
  definition on constructed cases.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

METRICS = ("cycle_knn", "mutual_knn", "lcs_knn", "cka", "unbiased_cka", "cknna", "svcca", "edit_distance_knn")


def _check(a: np.ndarray, b: np.ndarray, topk: int) -> None:
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"features must be 2-D [N, d]; got shapes {a.shape} and {b.shape}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"rows must be paired: A has {a.shape[0]} rows, B has {b.shape[0]}")
    if not 1 <= topk < a.shape[0]:
        raise ValueError(f"topk must be in [1, N-1] = [1, {a.shape[0] - 1}]; got {topk}")
    for name, x in (("A", a), ("B", b)):
        if not np.isfinite(x).all():
            raise ValueError(f"features {name} contain NaN or inf")


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def nearest_neighbors(kernel: np.ndarray, topk: int) -> np.ndarray:
    """kernel [N, N] -> [N, k] indices of each row's k largest entries, self excluded, most similar first."""
    sim = kernel.copy()
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :topk]


def mutual_knn(knn_a: np.ndarray, knn_b: np.ndarray) -> float:
    k = knn_a.shape[1]
    return float(np.mean([len(set(ra) & set(rb)) / k for ra, rb in zip(knn_a.tolist(), knn_b.tolist(), strict=True)]))


def cycle_knn(knn_a: np.ndarray, knn_b: np.ndarray) -> float:
    """i -> its B-neighbours j -> their A-neighbours: does the cycle come back to i?"""
    back = knn_a[knn_b]  # [N, k, k]
    n = knn_a.shape[0]
    return float((back == np.arange(n)[:, None, None]).reshape(n, -1).any(axis=1).mean())


def _lcs(x: list[int], y: list[int]) -> int:
    prev = [0] * (len(y) + 1)
    for xi in x:
        cur = [0]
        for j, yj in enumerate(y):
            cur.append(prev[j] + 1 if xi == yj else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _levenshtein(x: list[int], y: list[int]) -> int:
    prev = list(range(len(y) + 1))
    for i, xi in enumerate(x, 1):
        cur = [i]
        for j, yj in enumerate(y, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (xi != yj)))
        prev = cur
    return prev[-1]


def lcs_knn(knn_a: np.ndarray, knn_b: np.ndarray) -> float:
    return float(np.mean([_lcs(ra, rb) for ra, rb in zip(knn_a.tolist(), knn_b.tolist(), strict=True)]))


def edit_distance_knn(knn_a: np.ndarray, knn_b: np.ndarray) -> float:
    k = knn_a.shape[1]
    dists = [_levenshtein(ra, rb) / k for ra, rb in zip(knn_a.tolist(), knn_b.tolist(), strict=True)]
    return 1.0 - float(np.mean(dists))


def hsic_biased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741 - the kernel's usual name
    """tr(K H L H), H = I - 11^T / n (the 1 / (n-1)^2 factor cancels in every ratio used here)."""
    kc = k - k.mean(0, keepdims=True)
    kc = kc - kc.mean(1, keepdims=True)  # H K H
    return float(np.sum(kc * l.T))


def hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Song et al. (2012) unbiased HSIC: diagonals zeroed; n >= 4."""
    n = k.shape[0]
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 items; got {n}")
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    value = (np.sum(kt * lt.T) + kt.sum() * lt.sum() / ((n - 1) * (n - 2)) - 2.0 * np.sum(kt @ lt) / (n - 2)) / (
        n * (n - 3)
    )
    return float(value)


def _ratio(kl: float, kk: float, ll: float) -> float:
    denom = np.sqrt(kk * ll) if kk * ll > 0 else 0.0
    return float(kl / denom) if denom > 0 else 0.0


def cka(a: np.ndarray, b: np.ndarray, unbiased: bool = False) -> float:
    k, l = a @ a.T, b @ b.T  # noqa: E741
    hsic: Callable[[np.ndarray, np.ndarray], float] = hsic_unbiased if unbiased else hsic_biased
    return _ratio(hsic(k, l), hsic(k, k), hsic(l, l))


def cknna(a: np.ndarray, b: np.ndarray, topk: int) -> float:
    """CKA on the mutual k-nearest-neighbour pairs only (unbiased HSIC)."""
    k, l = a @ a.T, b @ b.T  # noqa: E741

    def mask(x: np.ndarray) -> np.ndarray:
        m = np.zeros_like(x)
        np.put_along_axis(m, nearest_neighbors(x, topk), 1.0, axis=1)
        return m

    mk, ml = mask(k), mask(l)

    def sim(x: np.ndarray, mx: np.ndarray, y: np.ndarray, my: np.ndarray) -> float:
        both = mx * my
        return hsic_unbiased(both * x, both * y)

    return _ratio(sim(k, mk, l, ml), sim(k, mk, k, mk), sim(l, ml, l, ml))


def svcca(a: np.ndarray, b: np.ndarray, cca_dim: int = 10) -> float:
    """Mean canonical correlation of the top `cca_dim` singular directions (exact SVD; see module doc)."""

    def top_directions(x: np.ndarray) -> np.ndarray:
        x = x - x.mean(0, keepdims=True)
        x = x / (x.std(0, keepdims=True) + 1e-8)
        u, s, _ = np.linalg.svd(x, full_matrices=False)
        keep = min(cca_dim, int((s > s[0] * 1e-10).sum()) if s.size and s[0] > 0 else 0)
        return u[:, :keep]

    ua, ub = top_directions(a.astype(np.float64)), top_directions(b.astype(np.float64))
    dim = min(ua.shape[1], ub.shape[1])
    if dim == 0:
        return 0.0
    corr = np.linalg.svd(ua.T @ ub, compute_uv=False)[:dim]
    return float(np.clip(corr, 0.0, 1.0).mean())


def alignment_scores(a: np.ndarray, b: np.ndarray, topk: int = 10, normalize: bool = True) -> dict[str, float]:
    """Every metric in `METRICS` for paired features a [N, d_A], b [N, d_B]."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    _check(a, b, topk)
    if normalize:
        a, b = l2_normalize(a), l2_normalize(b)
    knn_a, knn_b = nearest_neighbors(a @ a.T, topk), nearest_neighbors(b @ b.T, topk)
    scores = {
        "cycle_knn": cycle_knn(knn_a, knn_b),
        "mutual_knn": mutual_knn(knn_a, knn_b),
        "lcs_knn": lcs_knn(knn_a, knn_b),
        "cka": cka(a, b),
        "unbiased_cka": cka(a, b, unbiased=True),
        "cknna": cknna(a, b, topk),
        "svcca": svcca(a, b),
        "edit_distance_knn": edit_distance_knn(knn_a, knn_b),
    }
    assert tuple(scores) == METRICS
    return scores
