"""Global circular convolution (GCC), the operator of EdgeFormer / ParC-Net.

A GCC along one axis of a feature map of length ``n`` is a depthwise
convolution whose kernel spans the whole axis and whose window wraps around::

    y[c, i] = sum_{j=0}^{n-1} k[c, j] * x[c, (i + j) mod n]

(a cross-correlation whose window *starts* at ``i``, as in the official code;
it is not centred). Kernels and positional embeddings are learned at a fixed
*meta* length ``K`` and resized to the instance length ``n`` with 1-D linear
interpolation (``align_corners=True``), so one model runs at any input size.
Vertical kernels and embeddings follow the height and horizontal ones the
width, so non-square inputs work too.
"""
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Axis of an NCHW tensor that each direction runs along.
DIRECTION_DIMS = {'h': 2, 'w': 3}


def _direction_dim(direction: str) -> int:
    if direction not in DIRECTION_DIMS:
        raise ValueError(
            f"direction must be 'h' (along the height) or 'w' (along the "
            f'width), got {direction!r}')
    return DIRECTION_DIMS[direction]


def resize_meta(meta: Tensor, size: int) -> Tensor:
    """Resize meta kernels or embeddings of shape (C, K) to (C, size).

    1-D linear interpolation with ``align_corners=True``: output ``i`` reads
    the input at ``i * (K - 1) / (size - 1)``; ``size == 1`` takes element 0.
    """
    # When tracing (ONNX export) the resize stays in the graph, so that a
    # graph traced at the meta size still follows other input sizes.
    if meta.shape[-1] == size and not torch.jit.is_tracing():
        return meta
    return F.interpolate(
        meta.unsqueeze(0), size=size, mode='linear',
        align_corners=True).squeeze(0)


def global_circular_conv(x: Tensor, kernel: Tensor, dim: int) -> Tensor:
    """Depthwise circular convolution spanning axis ``dim`` of ``x``.

    Args:
        x (Tensor): Input of shape (N, C, H, W).
        kernel (Tensor): Per-channel kernels of shape (C, n), where ``n`` is
            the length of ``x`` along ``dim``.
        dim (int): 2 to convolve along the height, 3 along the width.

    Returns:
        Tensor: ``y`` of the shape of ``x`` with
        ``y[:, c, i] = sum_j kernel[c, j] * x[:, c, (i + j) % n]`` along
        ``dim``.
    """
    channels, n = kernel.shape
    # Appending the first n - 1 positions turns the circular convolution into
    # a valid one. Unlike F.pad(mode='circular') a slice exports to ONNX,
    # and unlike Tensor.narrow it converts to ncnn.
    head = x[:, :, :n - 1] if dim == 2 else x[:, :, :, :n - 1]
    wrapped = torch.cat([x, head], dim=dim)
    weight_shape = (channels, 1, n, 1) if dim == 2 else (channels, 1, 1, n)
    return F.conv2d(wrapped, kernel.reshape(weight_shape), groups=channels)


def circulant_matrix(kernel: Tensor) -> Tensor:
    """The (C, n) kernels as (C, n, n) circulant matrices.

    ``M[c, i, m] = kernel[c, (m - i) mod n]``, so that
    :func:`global_circular_conv` along the height is ``M @ x`` and along the
    width ``x @ M^T``.
    """
    n = kernel.shape[1]
    positions = torch.arange(n, device=kernel.device)
    return kernel[:, (positions[None, :] - positions[:, None]) % n]


def circulant_matmul(x: Tensor, kernel: Tensor, dim: int) -> Tensor:
    """:func:`global_circular_conv` as a product with circulant matrices.

    Same result (up to rounding) and multiply count; unlike a convolution
    whose kernel size depends on the input, it exports to ONNX with dynamic
    height and width (Range, Mod, Gather and MatMul).
    """
    circulant = circulant_matrix(kernel).unsqueeze(0)  # (1, C, n, n)
    if dim == 2:
        return torch.matmul(circulant, x)
    return torch.matmul(x, circulant.transpose(2, 3))


class GlobalCircularConv(nn.Module):
    """Global circular convolution with a learned meta kernel.

    Args:
        channels (int): Number of channels (the convolution is depthwise).
        meta_kernel_size (int): Stored kernel length ``K``; the kernel is
            resized to the input's length along ``direction``.
        direction (str): ``'h'`` to convolve along the height (vertical),
            ``'w'`` along the width (horizontal).
    """

    def __init__(self, channels: int, meta_kernel_size: int, direction: str):
        super().__init__()
        self.dim = _direction_dim(direction)
        self.direction = direction
        # PyTorch's default init of the (C, 1, K, 1) depthwise conv that holds
        # the meta kernel in the official code: U(-1/sqrt(K), 1/sqrt(K)).
        bound = 1 / math.sqrt(meta_kernel_size)
        self.meta_kernel = nn.Parameter(
            torch.empty(channels, meta_kernel_size).uniform_(-bound, bound))

    def instance_kernel(self, size: int) -> Tensor:
        """The (C, size) kernel applied to inputs of length ``size``."""
        return resize_meta(self.meta_kernel, size)

    def forward(self, x: Tensor) -> Tensor:
        kernel = self.instance_kernel(x.shape[self.dim])
        if torch.onnx.is_in_onnx_export():
            # The kernel size follows the input: the exporter cannot write
            # a convolution with it for dynamic shapes. (A model switched
            # to deploy mode has fixed kernels and exports convolutions.)
            return circulant_matmul(x, kernel, self.dim)
        return global_circular_conv(x, kernel, self.dim)

    def extra_repr(self) -> str:
        channels, size = self.meta_kernel.shape
        return (f'{channels}, meta_kernel_size={size}, '
                f'direction={self.direction!r}')


class AxialPositionalEmbedding(nn.Module):
    """Adds a learned positional embedding that varies along one axis.

    The embedding is constant along the other axis. It is stored at a meta
    length and resized like the GCC kernels.

    Args:
        channels (int): Number of channels.
        meta_size (int): Stored embedding length.
        direction (str): ``'h'``: varies along the height; ``'w'``: along the
            width.
    """

    def __init__(self, channels: int, meta_size: int, direction: str):
        super().__init__()
        self.dim = _direction_dim(direction)
        self.direction = direction
        # Standard normal, as in the official code.
        self.meta_embedding = nn.Parameter(torch.randn(channels, meta_size))

    def instance_embedding(self, size: int) -> Tensor:
        """The (C, size) embedding added to inputs of length ``size``."""
        return resize_meta(self.meta_embedding, size)

    def forward(self, x: Tensor) -> Tensor:
        embedding = self.instance_embedding(x.shape[self.dim])
        if self.dim == 2:
            return x + embedding[None, :, :, None]
        return x + embedding[None, :, None, :]

    def extra_repr(self) -> str:
        channels, size = self.meta_embedding.shape
        return f'{channels}, meta_size={size}, direction={self.direction!r}'
