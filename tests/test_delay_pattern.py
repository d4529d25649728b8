import pytest
import torch

from model.delay_pattern import build_delay_pattern, revert_delay_pattern, valid_mask

SPECIAL = 1024


@pytest.mark.parametrize("k", [1, 4, 8])
@pytest.mark.parametrize("t", [0, 1, 16, 100])
def test_revert_inverts_build(k: int, t: int) -> None:
    z = torch.randint(0, SPECIAL, (2, k, t))
    d = build_delay_pattern(z, SPECIAL)
    assert d.shape == (2, k, t + k)
    assert torch.equal(revert_delay_pattern(d), z)


def test_layout() -> None:
    z = torch.arange(8 * 5).reshape(1, 8, 5)
    d = build_delay_pattern(z, SPECIAL)
    assert (d[:, :, 0] == SPECIAL).all()  # step 0 all special
    for q in range(8):
        assert d[0, q, q + 1] == z[0, q, 0]  # codebook q lags q steps
        assert (d[0, q, : q + 1] == SPECIAL).all()
        assert (d[0, q, q + 1 + 5 :] == SPECIAL).all()
    m = valid_mask(8, 13)
    assert m[0, 1] and not m[0, 0] and not m[7, 7] and m[7, 8]
