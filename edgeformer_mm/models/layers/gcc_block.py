"""The GCC-CA block of EdgeFormer: two global circular convolution branches,
a feed-forward network and channel attention (``gcc_ca_mf_block`` in the
official code)."""
import torch
from mmcv.cnn import ConvModule, build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor, nn

from .gcc import (DIRECTION_DIMS, AxialPositionalEmbedding, GlobalCircularConv,
                  circulant_matrix, global_circular_conv)
from .reparam import batch_norm_affine, fold_norm_into_conv


def check_deploy_size(kind: str, deploy_size: tuple, x: Tensor):
    """Raise ValueError unless ``x`` has the map size a module of ``kind``
    ('block', 'ParC operator') was switched to deploy mode for."""
    if tuple(x.shape[2:]) != deploy_size:
        raise ValueError(
            f'This GCC {kind} was switched to deploy mode for '
            f'{deploy_size[0]}x{deploy_size[1]} inputs, got '
            f'{x.shape[2]}x{x.shape[3]}: switch an undeployed copy of the '
            'model to deploy mode for that size')


class GCCBranch(BaseModule):
    """Global spatial mixing of one half of the channels.

    ``x -> [PE] -> norm -> GCC(first) -> [PE] -> GCC(second)``, where the
    second direction is the other axis, so the branch sees the whole map.
    Each positional embedding varies along the axis of the GCC that follows
    it.

    Args:
        channels (int): Number of channels of the branch.
        meta_kernel_size (int): Meta length of kernels and embeddings.
        first_direction (str): ``'h'`` (vertical first) or ``'w'``.
        use_pe (bool): Whether to add positional embeddings.
        norm_cfg (dict): Config of the norm before the first GCC.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 channels: int,
                 meta_kernel_size: int,
                 first_direction: str,
                 use_pe: bool,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg=None):
        super().__init__(init_cfg)
        second_direction = 'w' if first_direction == 'h' else 'h'
        if use_pe:
            self.pe_1 = AxialPositionalEmbedding(channels, meta_kernel_size,
                                                 first_direction)
            self.pe_2 = AxialPositionalEmbedding(channels, meta_kernel_size,
                                                 second_direction)
        else:
            self.pe_1 = self.pe_2 = nn.Identity()
        self.norm = build_norm_layer(norm_cfg, channels)[1]
        self.gcc_1 = GlobalCircularConv(channels, meta_kernel_size,
                                        first_direction)
        self.gcc_2 = GlobalCircularConv(channels, meta_kernel_size,
                                        second_direction)
        self.dims = (DIRECTION_DIMS[first_direction],
                     DIRECTION_DIMS[second_direction])

    def forward(self, x: Tensor) -> Tensor:
        x = self.gcc_1(self.norm(self.pe_1(x)))
        return self.gcc_2(self.pe_2(x))

    @torch.no_grad()
    def baked(self, height: int, width: int) -> tuple:
        """The branch as fixed kernels and a bias for ``height`` x
        ``width`` inputs (eval mode), which :class:`GCCBlock` bakes into its
        deploy form.

        The kernels are resized once, the norm's scale ``a`` is folded into
        the first one, and the linear rest, the embeddings and the norm's
        shift ``b``, passes through the convs into one constant bias map::

            gcc_2(gcc_1(a * (x + pe_1) + b) + pe_2)
              = conv_2(conv_1(x))
                + sum(k_2) * gcc_1(a * pe_1 + b) + gcc_2(pe_2)

        with ``conv_1`` using ``a * k_1``: the branch equals
        ``global_circular_conv(global_circular_conv(x, kernel_1, dims[0]),
        kernel_2, dims[1]) + bias`` up to rounding, at this size only. The
        norm must be a BatchNorm, with its running statistics.

        Returns:
            tuple[Tensor]: ``kernel_1`` (C, length along ``dims[0]``),
            ``kernel_2`` (C, length along ``dims[1]``) and ``bias``
            (1, C, height, width), or (1, C, 1, 1) without embeddings.
        """
        if not isinstance(self.norm, nn.modules.batchnorm._BatchNorm):
            raise TypeError('switch_to_deploy folds a BatchNorm; this branch '
                            f'has a {type(self.norm).__name__}')
        lengths = [(height, width)[dim - 2] for dim in self.dims]
        kernel_1 = self.gcc_1.instance_kernel(lengths[0])
        kernel_2 = self.gcc_2.instance_kernel(lengths[1])
        scale, shift = batch_norm_affine(self.norm)

        def along(values: Tensor, dim: int) -> Tensor:
            """(C, n) values as a (1, C, n, 1) or (1, C, 1, n) map."""
            return values[None, :, :, None] if dim == 2 else values[None, :,
                                                                    None, :]

        first = shift[:, None].expand(-1, lengths[0])
        second = kernel_2.new_zeros(kernel_2.shape)
        use_pe = isinstance(self.pe_1, AxialPositionalEmbedding)
        if use_pe:
            first = first + scale[:, None] * self.pe_1.instance_embedding(
                lengths[0])
            second = self.pe_2.instance_embedding(lengths[1])
        bias = (
            global_circular_conv(
                along(first, self.dims[0]), kernel_1, self.dims[0]) *
            kernel_2.sum(1)[None, :, None, None] + global_circular_conv(
                along(second, self.dims[1]), kernel_2, self.dims[1]))
        if not use_pe:
            # Constant over the map: one bias per channel.
            bias = bias[:, :, :1, :1]
        return kernel_1 * scale[:, None], kernel_2, bias


class ChannelAttention(BaseModule):
    """Channel attention gate of the GCC-CA block.

    Global average pool, then 1x1 conv to ``channels // reduction`` + norm +
    hard swish, then 1x1 conv back + norm + hard sigmoid. Returns the gate,
    not the gated input.

    Args:
        channels (int): Number of channels.
        reduction (int): Channel reduction of the bottleneck. Defaults to 16.
        norm_cfg (dict): Config of the norm layers.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 channels: int,
                 reduction: int = 16,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg=None):
        super().__init__(init_cfg)
        squeeze_channels = channels // reduction
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.squeeze = ConvModule(
            channels,
            squeeze_channels,
            1,
            norm_cfg=norm_cfg,
            act_cfg=dict(type='HSwish'))
        self.excite = ConvModule(
            squeeze_channels,
            channels,
            1,
            norm_cfg=norm_cfg,
            # relu6(x + 3) / 6; mmcv's HSigmoid warns on every build.
            act_cfg=dict(type=nn.Hardsigmoid))

    def forward(self, x: Tensor) -> Tensor:
        return self.excite(self.squeeze(self.pool(x)))


class GCCBlock(BaseModule):
    """GCC-CA block: the transformer-like block of EdgeFormer.

    The channels are split in two halves. The first is mixed by a
    vertical-then-horizontal GCC branch, the second by a
    horizontal-then-vertical one, each with a residual. A feed-forward
    network follows, whose output is gated by channel attention and added
    back::

        y = cat(x1 + branch_hw(x1), x2 + branch_wh(x2))
        f = ffn(y)
        out = y + f * ca(f)

    Args:
        channels (int): Number of input and output channels (even).
        ffn_channels (int): Hidden width of the feed-forward network.
        meta_kernel_size (int): Meta length of the GCC kernels and PEs.
        use_pe (bool): Whether the branches add positional embeddings (the
            first block of a stage does). Defaults to False.
        ffn_drop_rate (float): Dropout after the feed-forward network.
            Defaults to 0.1.
        norm_cfg (dict): Config of the norm layers.
            Defaults to ``dict(type='BN')``.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 channels: int,
                 ffn_channels: int,
                 meta_kernel_size: int,
                 use_pe: bool = False,
                 ffn_drop_rate: float = 0.1,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg=None):
        super().__init__(init_cfg)
        if channels % 2:
            raise ValueError(
                f'GCCBlock splits its channels in two, got {channels}')
        half = channels // 2
        self.branch_hw = GCCBranch(half, meta_kernel_size, 'h', use_pe,
                                   norm_cfg)
        self.branch_wh = GCCBranch(half, meta_kernel_size, 'w', use_pe,
                                   norm_cfg)
        self.ffn = nn.Sequential(
            build_norm_layer(norm_cfg, channels)[1],
            nn.Conv2d(channels, ffn_channels, 1),
            nn.Hardswish(),
            nn.Conv2d(ffn_channels, channels, 1),
            nn.Dropout(ffn_drop_rate),
        )
        self.channel_attention = ChannelAttention(channels, norm_cfg=norm_cfg)
        # (height, width) once baked by switch_to_deploy.
        self.deploy_size = None

    def forward(self, x: Tensor) -> Tensor:
        if self.deploy_size is not None:
            check_deploy_size('block', self.deploy_size, x)
            y = x + self.deploy_mix(x) + self.deploy_bias
        else:
            x1, x2 = x.chunk(2, dim=1)
            y = torch.cat([x1 + self.branch_hw(x1), x2 + self.branch_wh(x2)],
                          dim=1)
        f = self.ffn(y)
        return y + f * self.channel_attention(f)

    def deploy_mix(self, x: Tensor) -> Tensor:
        """``V @ x @ H`` of the deploy form (:meth:`switch_to_deploy`).

        ``torch.export`` writes a broadcasting 4-D ``torch.matmul`` with
        copies that expand its operands (``expand_copy``), which
        ExecuTorch's XNNPACK backend does not take, so that its graph falls
        apart into many delegates: a single image is multiplied as
        (C, H, W) by 3-D batched products instead, with the same result.
        Traced (ONNX, ncnn), the 4-D form stays: pnnx takes the first axis
        of the 3-D maps for a batch axis and writes a wrong ncnn graph.
        """
        if not torch.jit.is_tracing() and x.shape[0] == 1:
            return torch.bmm(
                torch.bmm(self.deploy_vertical, x.flatten(0, 1)),
                self.deploy_horizontal).view_as(x)
        return torch.matmul(
            torch.matmul(self.deploy_vertical, x), self.deploy_horizontal)

    @torch.no_grad()
    def switch_to_deploy(self, height: int, width: int):
        """Bake the block for ``height`` x ``width`` inputs (inference).

        Both branches are baked (:meth:`GCCBranch.baked`) and written as
        one pair of matrix products over all channels::

            y = x + V @ x @ H + bias

        ``V`` (C, height, height) and ``H`` (C, width, width) hold each
        channel's vertical and horizontal circulant matrices: a branch's two
        convolutions run along different axes, so their order does not
        matter. No channel split or concatenation is left, and the products
        run as batched matrix multiplications, which every runtime does
        well, where a depthwise convolution with a kernel as long as the map
        often falls back to a slow path. The FFN's leading BatchNorm is
        folded into its first 1x1 convolution.
        """
        vertical, horizontal, biases = [], [], []
        for branch in (self.branch_hw, self.branch_wh):
            kernel_1, kernel_2, bias = branch.baked(height, width)
            kernels = dict(zip(branch.dims, (kernel_1, kernel_2)))
            vertical.append(circulant_matrix(kernels[2]))
            horizontal.append(circulant_matrix(kernels[3]).transpose(1, 2))
            biases.append(bias)
        self.register_buffer('deploy_vertical', torch.cat(vertical))
        self.register_buffer('deploy_horizontal', torch.cat(horizontal))
        self.register_buffer('deploy_bias', torch.cat(biases, dim=1))
        del self.branch_hw, self.branch_wh
        fold_norm_into_conv(self.ffn[0], self.ffn[1])
        self.ffn[0] = nn.Identity()
        self.deploy_size = (height, width)
