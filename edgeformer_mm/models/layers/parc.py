"""The ParC operator and mixer that plug EdgeFormer's design into ConvNets.

The paper (ECCV 2022, section 4.4 and table 3; reference definitions in
``ParC_ConvNets/`` of the ParC-Net repository) replaces the spatial conv of
the last blocks of ResNet-50, MobileNetV2 and ConvNeXt by a *position aware
circular convolution* (ParC): half of the channels get a positional
embedding and a vertical global circular convolution, the other half a
horizontal one. Both are built on :mod:`.gcc`; unlike the reference, whose
kernels are fixed to the map size of 224x224 inputs, the kernels and
embeddings are meta ones resized to each input, so any input size works.
"""
import math
from typing import Optional

import torch
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from .gcc import (AxialPositionalEmbedding, GlobalCircularConv,
                  global_circular_conv)
from .gcc_block import check_deploy_size
from .reparam import batch_norm_affine

KERNEL_INITS = ('kaiming', 'trunc_normal')


class ParCOperator(BaseModule):
    """Position aware circular convolution along one axis.

    ``x -> [+ PE] -> GCC (with bias)``, the embedding varying along the
    convolution's axis.

    Args:
        channels (int): Number of input and output channels.
        meta_kernel_size (int): Meta length of the kernel and embedding (the
            reference uses the map size of 224x224 inputs).
        direction (str): ``'h'`` (vertical) or ``'w'`` (horizontal).
        use_pe (bool): Whether to add a positional embedding.
        groups (int, optional): Channel groups of the convolution. Defaults
            to None: depthwise.
        kernel_init (str): How :meth:`reset_parameters` draws the kernel,
            as the host network initialises its convs, the kernel taken as
            the reference's ``(C, C / groups, K, 1)`` conv weight:
            ``'kaiming'`` (normal, fan out, as ResNet and MobileNetV2) or
            ``'trunc_normal'`` (std 0.02, as ConvNeXt). The bias becomes 0
            and the embedding truncated normal with std 0.02, as in the
            reference. Defaults to ``'kaiming'``.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 channels: int,
                 meta_kernel_size: int,
                 direction: str,
                 use_pe: bool,
                 groups: Optional[int] = None,
                 kernel_init: str = 'kaiming',
                 init_cfg=None):
        super().__init__(init_cfg)
        if kernel_init not in KERNEL_INITS:
            raise ValueError(f'kernel_init must be one of {KERNEL_INITS}, '
                             f'got {kernel_init!r}')
        self.kernel_init = kernel_init
        self.pe = AxialPositionalEmbedding(
            channels, meta_kernel_size, direction) if use_pe else None
        self.gcc = GlobalCircularConv(
            channels, meta_kernel_size, direction, groups, bias=True)
        self.dim = self.gcc.dim
        # (height, width) once baked by switch_to_deploy.
        self.deploy_size = None

    @torch.no_grad()
    def reset_parameters(self):
        """Initialise as the reference does; the ParC backbones call it
        from their ``init_weights`` (mmengine's recursion does not reach
        modules inside plain ``nn.Sequential`` stages)."""
        kernel = self.gcc.meta_kernel
        if self.kernel_init == 'kaiming':
            # Fan out of the reference conv: C * K.
            std = math.sqrt(2 / (kernel.shape[0] * kernel.shape[-1]))
            nn.init.normal_(kernel, 0, std)
        else:
            trunc_normal_(kernel, std=.02)
        nn.init.zeros_(self.gcc.bias)
        if self.pe is not None:
            trunc_normal_(self.pe.meta_embedding, std=.02)

    def forward(self, x: Tensor) -> Tensor:
        if self.deploy_size is not None:
            check_deploy_size('ParC operator', self.deploy_size, x)
            return global_circular_conv(x, self.deploy_kernel,
                                        self.dim) + self.deploy_bias
        if self.pe is not None:
            x = self.pe(x)
        return self.gcc(x)

    @torch.no_grad()
    def switch_to_deploy(self, height: int, width: int):
        """Bake the operator for ``height`` x ``width`` inputs (inference).

        The kernel is resized once and the embedding passes through the
        convolution into a bias map: ``gcc(x + pe) = conv(x) + gcc(pe)``,
        which varies along the convolution's axis only. No interpolation or
        embedding add is left; the result equals the original up to
        rounding, at this size only.
        """
        dim = self.dim
        length = (height, width)[dim - 2]
        kernel = self.gcc.instance_kernel(length)
        bias = self.gcc.bias[None, :, None, None]
        if self.pe is not None:
            embedding = self.pe.instance_embedding(length)
            embedding = (embedding[None, :, :, None]
                         if dim == 2 else embedding[None, :, None, :])
            bias = global_circular_conv(embedding, kernel, dim) + bias
        self.register_buffer('deploy_kernel', kernel.clone())
        self.register_buffer('deploy_bias', bias)
        del self.pe, self.gcc
        self.deploy_size = (height, width)

    @torch.no_grad()
    def fold_affine(self, scale: Tensor, shift: Tensor):
        """Make the baked operator return ``scale * y + shift`` (per output
        channel) instead of ``y``: a BatchNorm that follows it, folded in."""
        if self.deploy_size is None:
            raise RuntimeError('fold_affine needs switch_to_deploy first')
        shape = (-1, ) + (1, ) * (self.deploy_kernel.dim() - 1)
        self.deploy_kernel.mul_(scale.reshape(shape))
        self.deploy_bias = (self.deploy_bias * scale[None, :, None, None] +
                            shift[None, :, None, None])


class ParCMixer(BaseModule):
    """Spatial mixing of a ParC block, a drop-in for a stride-1 spatial conv
    with as many input as output channels.

    The first half of the channels goes through a vertical
    :class:`ParCOperator`, the second half through a horizontal one::

        y = cat(parc_h(x1), parc_w(x2))

    Args:
        channels (int): Number of input and output channels (even).
        meta_kernel_size (int): Meta length of kernels and embeddings.
        use_pe (bool): Whether both operators add positional embeddings.
        groups (int, optional): Channel groups of each operator's
            convolution, within its half. Defaults to None: depthwise (as in
            ParC-MobileNetV2 and ParC-ConvNeXt); ParC-ResNet uses 1.
        kernel_init (str): See :class:`ParCOperator`.
            Defaults to ``'kaiming'``.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 channels: int,
                 meta_kernel_size: int,
                 use_pe: bool,
                 groups: Optional[int] = None,
                 kernel_init: str = 'kaiming',
                 init_cfg=None):
        super().__init__(init_cfg)
        if channels % 2:
            raise ValueError(
                f'ParCMixer splits its channels in two, got {channels}')
        half = channels // 2
        self.parc_h = ParCOperator(half, meta_kernel_size, 'h', use_pe,
                                   groups, kernel_init)
        self.parc_w = ParCOperator(half, meta_kernel_size, 'w', use_pe,
                                   groups, kernel_init)

    def forward(self, x: Tensor) -> Tensor:
        x_h, x_w = x.chunk(2, dim=1)
        return torch.cat([self.parc_h(x_h), self.parc_w(x_w)], dim=1)

    def switch_to_deploy(self, height: int, width: int):
        """Bake both operators for ``height`` x ``width`` inputs
        (:meth:`ParCOperator.switch_to_deploy`)."""
        self.parc_h.switch_to_deploy(height, width)
        self.parc_w.switch_to_deploy(height, width)

    def fold_norm(self, norm: _BatchNorm):
        """Fold the BatchNorm (eval statistics) that follows this baked mixer
        into its operators; the caller replaces ``norm`` by an identity."""
        scale, shift = batch_norm_affine(norm)
        for op, part in zip((self.parc_h, self.parc_w),
                            zip(scale.chunk(2), shift.chunk(2))):
            op.fold_affine(*part)


PE_BLOCKS = ('first', 'all')


def plan_parc_blocks(depths, start_blocks, pe_blocks: str) -> dict:
    """Which blocks of a ConvNet become ParC blocks, and which add PEs.

    Args:
        depths (Sequence[int]): Number of blocks of each stage.
        start_blocks (Sequence[int]): Per stage, the index of the first ParC
            block; it and all later blocks of the stage are replaced, and a
            stage whose index equals its depth keeps its blocks. At least 1:
            a stage's first block changes the resolution or width.
        pe_blocks (str): ``'first'``: only the first ParC block of a stage
            adds positional embeddings; ``'all'``: every one does.

    Returns:
        dict: ``{(stage, block): use_pe}`` for each ParC block.
    """
    if pe_blocks not in PE_BLOCKS:
        raise ValueError(
            f'pe_blocks must be one of {PE_BLOCKS}, got {pe_blocks!r}')
    depths, start_blocks = list(depths), list(start_blocks)
    if len(start_blocks) != len(depths) or not all(
            isinstance(start, int) and 1 <= start <= depth
            for start, depth in zip(start_blocks, depths)):
        raise ValueError(
            f'parc_start_blocks must give, for each of the {len(depths)} '
            f'stages of depths {depths}, an int from 1 to the depth, got '
            f'{start_blocks}')
    return {(stage, block): pe_blocks == 'all' or block == start
            for stage, (depth, start) in enumerate(zip(depths, start_blocks))
            for block in range(start, depth)}
