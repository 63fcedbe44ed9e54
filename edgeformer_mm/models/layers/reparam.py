"""Folding BatchNorms into neighbouring linear layers (deploy mode)."""
from typing import Tuple

import torch
from torch import Tensor, nn


def batch_norm_affine(
        norm: nn.modules.batchnorm._BatchNorm) -> Tuple[Tensor, Tensor]:
    """``(scale, shift)`` per channel such that the norm in eval mode is
    ``scale * x + shift``."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return scale, norm.bias - norm.running_mean * scale


@torch.no_grad()
def fold_norm_into_conv(norm: nn.modules.batchnorm._BatchNorm,
                        conv: nn.Conv2d):
    """Make ``conv(x)`` compute ``conv(norm(x))`` (in eval mode).

    The norm is ``a * x + b`` per input channel; for a 1x1 convolution
    (grouped or not, so no padding mixes in zeros) that is exactly weights
    scaled by ``a`` along their input channel and a bias increased by the
    weights times ``b``. The caller replaces ``norm`` by an identity.
    """
    if conv.kernel_size != (1, 1):
        raise ValueError('only a 1x1 convolution can absorb a preceding norm '
                         f'exactly, got a {conv.kernel_size} one')
    scale, shift = batch_norm_affine(norm)
    out_channels, group_width = conv.weight.shape[:2]
    # Input channel of each weight column: group g reads channels
    # g * group_width ... (g + 1) * group_width - 1.
    group = torch.arange(out_channels) // (out_channels // conv.groups)
    inputs = group[:, None] * group_width + torch.arange(group_width)
    weight = conv.weight[:, :, 0, 0]
    extra_bias = (weight * shift[inputs]).sum(dim=1)
    conv.weight.mul_(scale[inputs][:, :, None, None])
    if conv.bias is None:
        conv.bias = nn.Parameter(extra_bias)
    else:
        conv.bias.add_(extra_bias)
