"""Kernel-alignment metrics: hand-computed cases and the properties the definitions imply."""

import json

import numpy as np
import pytest

from components.evaluate import alignment as al


def _feats(n: int = 60, d: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_identical_inputs_align_perfectly() -> None:
    a = _feats()
    s = al.alignment_scores(a, a.copy(), topk=5)
    assert set(s) == set(al.METRICS)
    for name in ("cycle_knn", "mutual_knn", "edit_distance_knn", "cka", "unbiased_cka", "cknna", "svcca"):
        assert s[name] == pytest.approx(1.0, abs=1e-9), name
    assert s["lcs_knn"] == 5.0  # lcs is a length: k for identical lists


def test_cka_is_invariant_to_orthogonal_maps_and_isotropic_scaling() -> None:
    a = _feats(d=12)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(12, 12)))
    b = 3.7 * a @ q
    for normalize in (False, True):
        s = al.alignment_scores(a, b, topk=5, normalize=normalize)
        assert s["cka"] == pytest.approx(1.0, abs=1e-9)
        assert s["unbiased_cka"] == pytest.approx(1.0, abs=1e-9)
        assert s["mutual_knn"] == 1.0  # the neighbourhoods are the same too
    # a non-isotropic scaling changes the kernel: CKA drops below 1
    assert al.cka(a, a * np.linspace(0.1, 3, 12)) < 0.99


def test_knn_metrics_by_hand() -> None:
    knn_a = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
    knn_b = np.array([[2, 1, 3], [3, 2, 0], [3, 1, 0], [2, 1, 0]])
    # overlaps: 3, 3, 3, 3 -> mutual 1.0 although the orders differ
    assert al.mutual_knn(knn_a, knn_b) == 1.0
    # lcs per row: [1,2,3]/[2,1,3] = 2, [0,2,3]/[3,2,0] = 1, [0,1,3]/[3,1,0] = 1, [0,1,2]/[2,1,0] = 1
    assert al.lcs_knn(knn_a, knn_b) == pytest.approx(5 / 4)
    # levenshtein per row: 2, 2, 2, 2 (k = 3) -> 1 - 2/3
    assert al.edit_distance_knn(knn_a, knn_b) == pytest.approx(1 - 2 / 3)
    # cycle: with k = 3 of N = 4 every row's neighbours contain everyone else -> always back
    assert al.cycle_knn(knn_a, knn_b) == 1.0
    one_a, one_b = np.array([[1], [0], [3], [2]]), np.array([[2], [3], [0], [1]])
    assert al.mutual_knn(one_a, one_b) == 0.0
    # 0 -B-> 2 -A-> 3 (not 0); 1 -> 3 -> 2; 2 -> 0 -> 1; 3 -> 1 -> 0: never back
    assert al.cycle_knn(one_a, one_b) == 0.0
    assert al.cycle_knn(one_a, one_a) == 1.0


def test_nearest_neighbours_exclude_self_and_order_by_similarity() -> None:
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.6, 0.6]])
    knn = al.nearest_neighbors(x @ x.T, 2)
    assert knn[0].tolist() == [1, 3] and knn[2].tolist() == [3, 1]
    assert all(i not in row for i, row in enumerate(knn.tolist()))


def test_hsic_biased_is_the_centred_trace() -> None:
    a, b = _feats(10, 4, 2), _feats(10, 5, 3)
    k, l = a @ a.T, b @ b.T  # noqa: E741
    h = np.eye(10) - 1 / 10
    assert al.hsic_biased(k, l) == pytest.approx(np.trace(k @ h @ l @ h))


def test_unbiased_estimators_are_near_zero_for_independent_features() -> None:
    """Biased CKA of independent high-dimensional features is far from 0 at small N; unbiased CKA is not."""
    a, b = _feats(40, 200, 4), _feats(40, 200, 5)
    s = al.alignment_scores(a, b, topk=5)
    assert s["cka"] > 0.3
    assert abs(s["unbiased_cka"]) < 0.1
    assert abs(s["cknna"]) < 0.3
    assert s["svcca"] < 0.7


def test_svcca_is_one_for_invertible_linear_maps_and_deterministic() -> None:
    a = _feats(80, 10, 6)
    m = np.random.default_rng(7).normal(size=(10, 10))
    assert al.svcca(a, a @ m) == pytest.approx(1.0, abs=1e-9)
    b = _feats(80, 10, 8)
    assert al.svcca(a, b) == al.svcca(a, b)  # exact SVD: no randomness
    assert al.svcca(a, b) < al.svcca(a, a @ m + 0.1 * b)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="rows must be paired"):
        al.alignment_scores(_feats(10), _feats(9))
    with pytest.raises(ValueError, match="topk"):
        al.alignment_scores(_feats(10), _feats(10), topk=10)
    bad = _feats(10)
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        al.alignment_scores(bad, _feats(10), topk=3)


def test_align_cli_prints_every_metric(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from pipelines.cli import app

    a = _feats(30, 8, 9)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", a @ np.random.default_rng(10).normal(size=(8, 6)))
    res = CliRunner().invoke(
        app, ["align", "--a", str(tmp_path / "a.npy"), "--b", str(tmp_path / "b.npy"), "--topk", "4"]
    )
    assert res.exit_code == 0, res.output
    scores = json.loads(res.output)
    assert set(scores) == set(al.METRICS) and all(isinstance(v, float) for v in scores.values())
    assert scores == pytest.approx(al.alignment_scores(a, np.load(tmp_path / "b.npy"), topk=4))
    res = CliRunner().invoke(app, ["align", "--a", str(tmp_path / "a.npy"), "--b", str(tmp_path / "missing.npy")])
    assert res.exit_code != 0 and "missing.npy" in res.output
