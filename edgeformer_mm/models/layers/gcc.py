"""Global circular convolution (GCC), the operator of EdgeFormer / ParC-Net.

A GCC along one axis of a feature map of length ``n`` is a convolution
whose kernel spans the whole axis and whose window wraps around::

    y[c, i] = sum_{j=0}^{n-1} k[c, j] * x[c, (i + j) mod n]

(a cross-correlation whose window *starts* at ``i``, as in the official code;
it is not centred). EdgeFormer's is depthwise, as above; the ParC blocks
that the paper plugs into ResNets mix channels too (a grouped or dense
kernel ``k[o, c, j]``). Kernels and positional embeddings are learned at a
fixed *meta* length ``K`` and resized to the instance length ``n`` with 1-D
linear interpolation (``align_corners=True``), so one model runs at any
input size.
Vertical kernels and embeddings follow the height and horizontal ones the
width, so non-square inputs work too.
"""
import math
from typing import Optional

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
    """Resize meta kernels or embeddings of shape (..., K) to (..., size).

    1-D linear interpolation with ``align_corners=True``: output ``i`` reads
    the input at ``i * (K - 1) / (size - 1)``; ``size == 1`` takes element 0.
    """
    # When tracing (ONNX export) the resize stays in the graph, so that a
    # graph traced at the meta size still follows other input sizes.
    if meta.shape[-1] == size and not torch.jit.is_tracing():
        return meta
    resized = F.interpolate(
        meta.reshape(1, -1, meta.shape[-1]),
        size=size,
        mode='linear',
        align_corners=True)
    return resized.reshape(*meta.shape[:-1], size)


def _grouped(kernel: Tensor) -> Tensor:
    """A (C, n) depthwise kernel as (C, 1, n); (O, C_g, n) ones unchanged."""
    return kernel.unsqueeze(1) if kernel.dim() == 2 else kernel


def global_circular_conv(x: Tensor,
                         kernel: Tensor,
                         dim: int,
                         bias: Optional[Tensor] = None) -> Tensor:
    """Circular convolution spanning axis ``dim`` of ``x``.

    Args:
        x (Tensor): Input of shape (N, C, H, W).
        kernel (Tensor): Depthwise kernels of shape (C, n), or grouped ones
            of shape (O, C / groups, n), where ``n`` is the length of ``x``
            along ``dim``.
        dim (int): 2 to convolve along the height, 3 along the width.
        bias (Tensor, optional): Per output channel bias.

    Returns:
        Tensor: ``y`` with ``y[:, c, i] = sum_j kernel[c, j] *
        x[:, c, (i + j) % n]`` along ``dim`` (depthwise; a grouped kernel
        also sums over its group's input channels).
    """
    kernel = _grouped(kernel)
    n = kernel.shape[-1]
    # Appending the first n - 1 positions turns the circular convolution into
    # a valid one. Unlike F.pad(mode='circular') a slice exports to ONNX,
    # and unlike Tensor.narrow it converts to ncnn.
    head = x[:, :, :n - 1] if dim == 2 else x[:, :, :, :n - 1]
    wrapped = torch.cat([x, head], dim=dim)
    weight = kernel.unsqueeze(3) if dim == 2 else kernel.unsqueeze(2)
    return F.conv2d(
        wrapped, weight, bias, groups=x.shape[1] // kernel.shape[1])


def circulant_matrix(kernel: Tensor) -> Tensor:
    """Kernels of shape (..., n) as circulant matrices of shape (..., n, n).

    ``M[..., i, m] = kernel[..., (m - i) mod n]``, so that a depthwise
    :func:`global_circular_conv` along the height is ``M @ x`` and along the
    width ``x @ M^T``.
    """
    n = kernel.shape[-1]
    positions = torch.arange(n, device=kernel.device)
    return kernel[..., (positions[None, :] - positions[:, None]) % n]


def circulant_matmul(x: Tensor, kernel: Tensor, dim: int) -> Tensor:
    """:func:`global_circular_conv` (without bias) as a product with
    circulant matrices.

    Same result (up to rounding) and multiply count; unlike a convolution
    whose kernel size depends on the input, it exports to ONNX with dynamic
    height and width (Range, Mod, Gather and MatMul).
    """
    if kernel.dim() == 2:
        # Depthwise: one (n, n) matrix per channel.
        circulant = circulant_matrix(kernel).unsqueeze(0)  # (1, C, n, n)
        if dim == 2:
            return torch.matmul(circulant, x)
        return torch.matmul(x, circulant.transpose(2, 3))
    # Grouped: each group's output channels and positions are one matrix
    # product over its input channels and positions.
    out_channels, group_width, n = kernel.shape
    batch, channels = x.shape[:2]
    groups = channels // group_width
    circulant = circulant_matrix(kernel).reshape(groups, -1, group_width, n,
                                                 n)
    # (G, O_g * n, C_g * n): rows (output channel, i), columns (channel, m).
    circulant = circulant.permute(0, 1, 3, 2, 4).reshape(
        1, groups, out_channels // groups * n, group_width * n)
    if dim == 3:
        x = x.transpose(2, 3)
    other = x.shape[3]
    y = torch.matmul(circulant, x.reshape(batch, groups, group_width * n,
                                          other))
    y = y.reshape(batch, out_channels, n, other)
    return y.transpose(2, 3) if dim == 3 else y


class GlobalCircularConv(nn.Module):
    """Global circular convolution with a learned meta kernel.

    Args:
        channels (int): Number of input and output channels.
        meta_kernel_size (int): Stored kernel length ``K``; the kernel is
            resized to the input's length along ``direction``.
        direction (str): ``'h'`` to convolve along the height (vertical),
            ``'w'`` along the width (horizontal).
        groups (int, optional): Channel groups, as for ``nn.Conv2d``.
            Defaults to None: depthwise (EdgeFormer's), with the meta kernel
            stored as (C, K); otherwise it is (C, C / groups, K).
        bias (bool): Whether to add a learned bias per channel.
            Defaults to False.
    """

    def __init__(self,
                 channels: int,
                 meta_kernel_size: int,
                 direction: str,
                 groups: Optional[int] = None,
                 bias: bool = False):
        super().__init__()
        self.dim = _direction_dim(direction)
        self.direction = direction
        if groups is not None and channels % groups:
            raise ValueError(
                f'{channels} channels do not split into {groups} groups')
        shape = ((channels, meta_kernel_size) if groups is None else
                 (channels, channels // groups, meta_kernel_size))
        # PyTorch's default init of the conv that holds the meta kernel in
        # the official code: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights
        # and bias, fan_in = C / groups * K.
        bound = 1 / math.sqrt(math.prod(shape[1:]))
        self.meta_kernel = nn.Parameter(
            torch.empty(shape).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(channels).uniform_(
            -bound, bound)) if bias else None

    def instance_kernel(self, size: int) -> Tensor:
        """The kernel applied to inputs of length ``size``: (C, size)
        depthwise or (C, C / groups, size)."""
        return resize_meta(self.meta_kernel, size)

    def forward(self, x: Tensor) -> Tensor:
        kernel = self.instance_kernel(x.shape[self.dim])
        if not torch.onnx.is_in_onnx_export():
            return global_circular_conv(x, kernel, self.dim, self.bias)
        # The kernel size follows the input: the exporter cannot write a
        # convolution with it for dynamic shapes. (A model switched to
        # deploy mode has fixed kernels and exports convolutions.)
        y = circulant_matmul(x, kernel, self.dim)
        return y if self.bias is None else y + self.bias[:, None, None]

    def extra_repr(self) -> str:
        channels, size = self.meta_kernel.shape[0], self.meta_kernel.shape[-1]
        groups = ('' if self.meta_kernel.dim() == 2 else
                  f', groups={channels // self.meta_kernel.shape[1]}')
        return (f'{channels}, meta_kernel_size={size}, '
                f'direction={self.direction!r}{groups}, '
                f'bias={self.bias is not None}')


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
