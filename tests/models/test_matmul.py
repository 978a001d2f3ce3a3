"""``fast.matmul.matmul``: the per-model product the fused seq2seq uses, checked against float64 ``bmm``."""

import pytest
import torch

from liftbench.fast.matmul import matmul, onednn_enabled


def _views(K, M, k, n, layout):
    torch.manual_seed(0)
    a = torch.randn(K, M, k)
    if layout == "a_transposed":  # e.g. the (K, H, T*B) view of a saved activation
        a = torch.randn(K, k, M).transpose(1, 2)
    b = torch.randn(K, k, n)
    if layout == "b_transposed":  # e.g. _t(weight) in the backward
        b = torch.randn(K, n, k).transpose(1, 2)
    if layout == "b_row_slice":  # e.g. w_e[:, H:], the recurrent half of the LSTM kernel
        b = torch.randn(K, 2 * k, n)[:, k:]
    return a, b


@pytest.mark.parametrize("layout", ["contiguous", "a_transposed", "b_transposed", "b_row_slice"])
@pytest.mark.parametrize("K", [1, 3])
def test_matmul_equals_float64_bmm(layout, K):
    a, b = _views(K, 32, 384, 512, layout)  # 6.3 M multiply-adds: over the oneDNN threshold
    add = torch.randn(K, 1, 512)
    ref = torch.baddbmm(add.double(), a.double(), b.double())
    out = matmul(a, b, add)
    assert out.shape == (K, 32, 512) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(matmul(a, b).double(), torch.bmm(a.double(), b.double()), rtol=1e-5, atol=1e-4)


def test_packed_models_are_bitwise_separate_calls():
    a, b = _views(3, 32, 256, 512, "b_row_slice")
    out = matmul(a, b)
    for k in range(3):
        assert torch.equal(out[k : k + 1], matmul(a[k : k + 1], b[k : k + 1]))


def test_tiny_products_take_bmm_exactly():
    a, b = torch.randn(1, 32, 48), torch.randn(1, 48, 1024)
    assert torch.equal(matmul(a, b), torch.bmm(a, b))


def test_float64_takes_bmm_exactly():
    a = torch.randn(2, 5, 7, dtype=torch.float64)
    b = torch.randn(2, 7, 3, dtype=torch.float64)
    assert torch.equal(matmul(a, b), torch.bmm(a, b))


def test_onednn_is_used_on_this_cpu_build():
    """The CPU wheel ships oneDNN; if this fails, the fast path silently fell back to bmm (slower)."""
    assert onednn_enabled() == torch.backends.mkldnn.is_available()
