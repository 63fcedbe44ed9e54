"""The GCC operator against direct, obviously-correct references."""
import pytest
import torch
import torch.nn.functional as F
from helpers import roll_reference

from edgeformer_mm.models.layers import (AxialPositionalEmbedding,
                                         GlobalCircularConv,
                                         global_circular_conv, resize_meta)
from edgeformer_mm.models.layers.gcc import circulant_matmul


@pytest.mark.parametrize('operator', [global_circular_conv, circulant_matmul])
@pytest.mark.parametrize('dim', [2, 3])
@pytest.mark.parametrize('size', [(1, 1), (2, 3), (5, 7), (8, 8), (17, 4)])
def test_global_circular_conv_matches_roll_reference(operator, dim, size):
    """Both forms: the convolution and the circulant product that dynamic
    ONNX exports use."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    kernel = torch.randn(3, x.shape[dim], dtype=torch.float64)
    y = operator(x, kernel, dim)
    assert y.shape == x.shape
    torch.testing.assert_close(y, roll_reference(x, kernel, dim))


def test_global_circular_conv_window_starts_at_i():
    # One-hot kernel at j = 1: every output reads its next neighbour, wrapping.
    x = torch.arange(5.).reshape(1, 1, 5, 1)
    kernel = torch.tensor([[0., 1., 0., 0., 0.]])
    y = global_circular_conv(x, kernel, dim=2)
    assert y.flatten().tolist() == [1., 2., 3., 4., 0.]


def test_resize_meta_is_linear_align_corners():
    meta = torch.tensor([[0., 3., 6.], [1., 1., 5.]])
    assert resize_meta(meta, 3) is meta
    torch.testing.assert_close(
        resize_meta(meta, 5),
        torch.tensor([[0., 1.5, 3., 4.5, 6.], [1., 1., 1., 3., 5.]]))
    # Length 1 takes the first element; shrinking keeps both ends.
    torch.testing.assert_close(resize_meta(meta, 1), meta[:, :1])
    torch.testing.assert_close(resize_meta(meta, 2), meta[:, [0, 2]])


@pytest.mark.parametrize('size', [1, 7, 16, 40, 64])
def test_resize_meta_equals_official_bilinear(size):
    # The official code stores kernels as (C, 1, K, 1) and resizes them with
    # bilinear interpolation; on that layout this is 1-D linear.
    torch.manual_seed(0)
    meta = torch.randn(6, 16)
    official = F.interpolate(
        meta[:, None, :, None], size=(size, 1), mode='bilinear',
        align_corners=True)
    torch.testing.assert_close(resize_meta(meta, size),
                               official[:, 0, :, 0])


def test_gcc_module_follows_height_and_width_separately():
    torch.manual_seed(0)
    vertical = GlobalCircularConv(4, meta_kernel_size=8, direction='h')
    horizontal = GlobalCircularConv(4, meta_kernel_size=8, direction='w')
    x = torch.randn(2, 4, 6, 11)
    for module, dim in ((vertical, 2), (horizontal, 3)):
        kernel = resize_meta(module.meta_kernel, x.shape[dim])
        torch.testing.assert_close(module(x), roll_reference(x, kernel, dim))


def test_gcc_module_init_and_gradient():
    torch.manual_seed(0)
    gcc = GlobalCircularConv(64, meta_kernel_size=32, direction='h')
    bound = 1 / 32**0.5
    assert gcc.meta_kernel.abs().max() <= bound
    assert gcc.meta_kernel.abs().max() > 0.9 * bound
    gcc(torch.randn(1, 64, 9, 5)).sum().backward()
    assert gcc.meta_kernel.grad is not None
    assert gcc.meta_kernel.grad.abs().sum() > 0


def test_axial_positional_embedding():
    torch.manual_seed(0)
    x = torch.zeros(2, 3, 4, 6)
    pe_h = AxialPositionalEmbedding(3, meta_size=4, direction='h')
    pe_w = AxialPositionalEmbedding(3, meta_size=4, direction='w')
    out_h, out_w = pe_h(x), pe_w(x)
    # Varies along its own axis only, at the instance length.
    torch.testing.assert_close(out_h[0, :, :, 0], pe_h.meta_embedding)
    assert (out_h == out_h[..., :1]).all()
    torch.testing.assert_close(out_w[1, :, 0, :],
                               resize_meta(pe_w.meta_embedding, 6))
    assert (out_w == out_w[:, :, :1]).all()


@pytest.mark.parametrize('module',
                         [GlobalCircularConv, AxialPositionalEmbedding])
def test_unknown_direction(module):
    with pytest.raises(ValueError, match="'h'"):
        module(4, 8, 'x')
