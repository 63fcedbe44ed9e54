"""EdgeFormer backbone (ParC-Net, ECCV 2022)."""
import copy
import math
import os.path as osp
from collections.abc import Sequence

import torch
from mmcv.cnn import ConvModule, build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_with_prefix)
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import InvertedResidual
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...registry import MODELS, register
from ...utils.state_dict import compare_state_dicts
from ...utils.validation import check_positive_int
from ..layers import GCCBlock
from ..layers.reparam import fold_norm_into_conv
from .deploy_mixin import InputSizeDeployMixin


class EdgeFormerGlobalBlock(BaseModule):
    """The global block of an EdgeFormer stage (``outer_frame_v1``), which
    follows the stage's MobileNetV2 block.

    A grouped 3x3 conv and a 1x1 conv project the input to the width of the
    global branch, a stack of :class:`GCCBlock` mixes it globally (positional
    embeddings in the first block only), a norm and a grouped 1x1 conv project
    it back, and a 3x3 conv fuses the result with the stage input, either
    concatenated (global part first) or added.

    Args:
        in_channels (int): Input and output channels.
        global_channels (int): Width of the GCC blocks.
        ffn_channels (int): Hidden width of the GCC blocks' FFNs.
        num_blocks (int): Number of GCC blocks.
        meta_kernel_size (int): Meta length of GCC kernels and PEs.
        fusion (str): ``'concat'`` or ``'add'``.
        ffn_drop_rate (float): Dropout after each FFN.
        conv_cfg (dict, optional): Config of the convs around the GCC blocks
            (the GCC blocks' own convs are GCCs and 1x1 FFN layers).
        norm_cfg (dict): Config of the norm layers.
        act_cfg (dict): Config of the activation of the local convs.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 global_channels: int,
                 ffn_channels: int,
                 num_blocks: int,
                 meta_kernel_size: int,
                 fusion: str,
                 ffn_drop_rate: float = 0.1,
                 conv_cfg=None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='SiLU'),
                 init_cfg=None):
        super().__init__(init_cfg)
        self.fusion = fusion
        groups = math.gcd(global_channels, in_channels)
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.local_proj = nn.Sequential(
            ConvModule(
                in_channels,
                global_channels,
                3,
                padding=1,
                groups=groups,
                **common),
            build_conv_layer(
                conv_cfg, global_channels, global_channels, 1, bias=False))
        self.blocks = nn.Sequential(*[
            GCCBlock(
                global_channels,
                ffn_channels,
                meta_kernel_size,
                use_pe=i == 0,
                ffn_drop_rate=ffn_drop_rate,
                norm_cfg=norm_cfg) for i in range(num_blocks)
        ])
        self.norm = build_norm_layer(norm_cfg, global_channels)[1]
        self.global_proj = ConvModule(
            global_channels, in_channels, 1, groups=groups, **common)
        fusion_in = 2 * in_channels if fusion == 'concat' else in_channels
        self.fuse = ConvModule(
            fusion_in, in_channels, 3, padding=1, **common)

    def forward(self, x: Tensor) -> Tensor:
        y = self.global_proj(self.norm(self.blocks(self.local_proj(x))))
        if self.fusion == 'concat':
            return self.fuse(torch.cat([y, x], dim=1))
        return self.fuse(x + y)

    @torch.no_grad()
    def fold_norm(self):
        """Fold the norm before ``global_proj`` into its 1x1 conv (deploy
        mode)."""
        fold_norm_into_conv(self.norm, self.global_proj.conv)
        self.norm = nn.Identity()


@register(MODELS)
class EdgeFormer(InputSizeDeployMixin, BaseBackbone):
    """EdgeFormer backbone.

    A PyTorch implementation of `EdgeFormer: Improving Light-weight ConvNets
    by Learning from Vision Transformers <https://arxiv.org/abs/2203.03952>`_
    (ECCV 2022, also published as ParC-Net), written from the official
    repository https://github.com/hkzhang91/EdgeFormer. Unlike the official
    code it accepts any input height and width: vertical GCC kernels and
    positional embeddings are resized to the height, horizontal ones to the
    width (on square inputs the result is the official one).

    The network has seven stages, which ``out_indices`` and ``frozen_stages``
    count from 0: the stem (stride 2), ``layer1`` and ``layer2`` (MobileNetV2
    blocks; strides 2 and 4), ``layer3`` to ``layer5`` (a stride-2
    MobileNetV2 block then a :class:`EdgeFormerGlobalBlock`; strides 8, 16 and 32) and
    the final 1x1 expansion conv ``conv_1x1_exp`` that classifiers use.
    Stages after the last one in ``out_indices`` are not built.

    Args:
        arch (str | dict): ``'xs'``, ``'s'`` or ``'h'``, or a custom dict
            with the keys of :attr:`arch_settings` entries:

            - **stem_channels** (int) and **stem_kernel_size** (int, odd).
            - **layers** (list of 5 lists): ``['mv2', out_channels, stride,
              num_blocks]`` or ``['parc', out_channels, stride,
              global_channels, ffn_channels, num_gcc_blocks,
              meta_kernel_size]``.
            - **fusion** (str): ``'concat'`` or ``'add'``, how the ParC stages
              merge their global and local paths.

            Defaults to ``'s'``.
        in_channels (int): Number of input channels. Defaults to 3.
        out_indices (int | Sequence[int]): Output from which stages (0 to 6,
            negative values count from the end). Defaults to ``(6, )``.
        output_stride (int): 32, 16 or 8, the stride of layer5's output. For
            dense prediction, as in the official segmentation models, 16
            keeps layer5 and 8 keeps layer4 and layer5 at stride 1 instead
            of 2: their first (MobileNetV2) block does not downsample, and
            its depthwise conv takes the dilation gathered by the earlier
            stride-1 stages (so 8 dilates layer5's by 2; nothing else is
            dilated). The GCC kernels and embeddings follow the larger maps
            as at any input size. Defaults to 32.
        frozen_stages (int): Stages up to this index are frozen (eval mode,
            no gradients). -1 freezes nothing. Defaults to -1.
        norm_eval (bool): Whether to keep all norm layers in eval mode (frozen
            statistics) while training. Defaults to False.
        expand_ratio (int): Expansion of the MobileNetV2 blocks.
            Defaults to 4.
        ffn_drop_rate (float): Dropout after the FFN of each GCC block.
            Defaults to 0.1.
        deploy_input_size (tuple[int, int], optional): ``(H, W)`` for which
            :meth:`switch_to_deploy` without an argument bakes the model (as
            mmdeploy calls it; tools/deploy.py sets it from a static deploy
            config). Defaults to None: the model stays as it is, resizing
            its kernels to any input, and exports with dynamic shapes.
        conv_cfg (dict, optional): Config of every conv layer but the GCCs
            and the 1x1 layers inside the GCC blocks (FFN, channel
            attention). Defaults to None (``nn.Conv2d``).
        norm_cfg (dict): Config of the norm layers.
            Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation of the conv layers (the GCC blocks use hard
            swish and hard sigmoid internally). Defaults to
            ``dict(type='SiLU')``.
        init_cfg (dict | list[dict], optional): Initialization config. The
            default is the official initialisation: Kaiming normal (fan out)
            for convs, 1 and 0 for norms; GCC meta kernels keep their uniform
            init and positional embeddings their standard normal one.

    Example:
        >>> import torch
        >>> from edgeformer_mm.models import EdgeFormer
        >>> model = EdgeFormer(arch='s', out_indices=(3, 4, 5))
        >>> outs = model(torch.rand(1, 3, 224, 288))
        >>> print([tuple(o.shape) for o in outs])
        [(1, 96, 28, 36), (1, 128, 14, 18), (1, 160, 7, 9)]
    """

    arch_settings = {
        'xs': {
            'stem_channels': 16,
            'stem_kernel_size': 3,
            'layers': [
                ['mv2', 32, 1, 1],
                ['mv2', 64, 2, 3],
                ['parc', 96, 2, 96, 192, 2, 32],
                ['parc', 128, 2, 128, 256, 3, 16],
                ['parc', 160, 2, 160, 320, 2, 8],
            ],
            'fusion': 'add',
        },
        's': {
            'stem_channels': 16,
            'stem_kernel_size': 3,
            'layers': [
                ['mv2', 32, 1, 1],
                ['mv2', 64, 2, 3],
                ['parc', 96, 2, 192, 384, 2, 32],
                ['parc', 128, 2, 256, 512, 4, 16],
                ['parc', 160, 2, 320, 640, 3, 8],
            ],
            'fusion': 'concat',
        },
        'h': {
            'stem_channels': 48,
            'stem_kernel_size': 5,
            'layers': [
                ['mv2', 96, 1, 1],
                ['mv2', 144, 2, 3],
                ['parc', 216, 2, 324, 648, 3, 32],
                ['parc', 288, 2, 432, 864, 9, 16],
                ['parc', 432, 2, 432, 864, 3, 8],
            ],
            'fusion': 'concat',
        },
    }
    deploy_module_type = GCCBlock
    all_stage_names = ('stem', 'layer1', 'layer2', 'layer3', 'layer4',
                       'layer5', 'conv_1x1_exp')
    # Output stride -> how many of the last layers keep stride 1.
    output_strides = {32: 0, 16: 1, 8: 2}
    num_stages = len(all_stage_names)
    # The expansion conv is 4x its input, at most this wide.
    max_exp_channels = 960

    def __init__(self,
                 arch='s',
                 in_channels: int = 3,
                 out_indices=(6, ),
                 output_stride: int = 32,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 expand_ratio: int = 4,
                 ffn_drop_rate: float = 0.1,
                 deploy_input_size=None,
                 conv_cfg=None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='SiLU'),
                 init_cfg=[
                     dict(type='Kaiming', layer='Conv2d', mode='fan_out'),
                     dict(
                         type='Constant',
                         val=1,
                         layer=['_BatchNorm', 'GroupNorm'])
                 ]):
        super().__init__(init_cfg)
        self.arch = self._parse_arch(arch)
        self.arch_name = arch.upper() if isinstance(arch, str) else 'custom'
        check_positive_int(in_channels, 'in_channels')
        self.in_channels = in_channels
        self.out_indices = self._parse_out_indices(out_indices)
        if output_stride not in self.output_strides:
            raise ValueError(f'output_stride must be one of '
                             f'{self.output_strides}, got {output_stride!r}')
        self.output_stride = output_stride
        if not isinstance(frozen_stages, int) or not (
                -1 <= frozen_stages < self.num_stages):
            raise ValueError(
                f'frozen_stages must be an int from -1 to '
                f'{self.num_stages - 1}, got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.init_deploy(deploy_input_size)

        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        kernel_size = self.arch['stem_kernel_size']
        channels = self.arch['stem_channels']
        # (module, output channels) per stage, in all_stage_names order.
        stages = [(ConvModule(
                       in_channels,
                       channels,
                       kernel_size,
                       stride=2,
                       padding=kernel_size // 2,
                       **common), channels)]
        num_layers = len(self.arch['layers'])
        first_undilated = num_layers - self.output_strides[output_stride]
        dilation = 1
        for i, spec in enumerate(self.arch['layers']):
            stride, first_dilation = spec[2], dilation
            if i >= first_undilated and stride == 2:
                # The official dilate_l4 / dilate_l5: later stages see the
                # map at twice the resolution.
                stride, dilation = 1, 2 * dilation
            if spec[0] == 'mv2':
                _, out_channels, _, num_blocks = spec
                blocks = [
                    self._mv2_block(channels if j == 0 else out_channels,
                                    out_channels, stride if j == 0 else 1,
                                    expand_ratio, common,
                                    first_dilation if j == 0 else 1)
                    for j in range(num_blocks)
                ]
            else:
                (_, out_channels, _, global_channels, ffn_channels,
                 num_gcc_blocks, meta_kernel_size) = spec
                blocks = [
                    self._mv2_block(channels, out_channels, stride,
                                    expand_ratio, common, first_dilation),
                    EdgeFormerGlobalBlock(
                        out_channels,
                        global_channels,
                        ffn_channels,
                        num_gcc_blocks,
                        meta_kernel_size,
                        fusion=self.arch['fusion'],
                        ffn_drop_rate=ffn_drop_rate,
                        **common)
                ]
            stages.append((nn.Sequential(*blocks), out_channels))
            channels = out_channels
        exp_channels = min(4 * channels, self.max_exp_channels)
        stages.append((ConvModule(channels, exp_channels, 1,
                                  **common), exp_channels))

        # Only build what some output needs: detectors and segmentors use
        # intermediate stages and would carry unused weights otherwise.
        stages = stages[:max(self.out_indices) + 1]
        self.stage_names = list(self.all_stage_names[:len(stages)])
        self.stage_channels = [channels for _, channels in stages]
        for name, (stage, _) in zip(self.stage_names, stages):
            self.add_module(name, stage)

        self._freeze_stages()

    @staticmethod
    def _mv2_block(in_channels, out_channels, stride, expand_ratio, common,
                   dilation=1):
        block = InvertedResidual(
            in_channels,
            out_channels,
            mid_channels=in_channels * expand_ratio,
            stride=stride,
            **common)
        # mmpretrain's block has no dilation argument; its depthwise conv is
        # 3x3 with padding 1, so dilation d needs padding d.
        depthwise = block.depthwise_conv.conv
        depthwise.dilation = depthwise.padding = (dilation, dilation)
        return block

    def fold_norms(self):
        """Fold each ParC stage's norm into the 1x1 convolution after it; the
        GCC blocks fold theirs when baked."""
        for stage in self.modules():
            if isinstance(stage, EdgeFormerGlobalBlock):
                stage.fold_norm()

    def init_weights(self):
        """Initialise, loading ``Pretrained`` weights strictly.

        mmengine's ``Pretrained`` init loads non-strictly: a checkpoint of
        another arch or with other key names only logs warnings and leaves
        the weights random. Here every weight of the built stages must come
        from the checkpoint with its shape, or a ``ValueError`` lists what
        does not fit. Weights of stages this backbone does not build (e.g. the
        expansion conv of a classifier checkpoint loaded into a detector's
        backbone) are skipped.
        """
        cfg = self.init_cfg
        if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
            super().init_weights()
            return
        checkpoint, prefix = cfg['checkpoint'], cfg.get('prefix')
        if '://' not in checkpoint and not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'The Pretrained checkpoint {checkpoint} of this '
                f'EdgeFormer-{self.arch_name} backbone does not exist: set '
                "the backbone's init_cfg.checkpoint (e.g. --cfg-options "
                'model.backbone.init_cfg.checkpoint=PATH) to an existing '
                'file.')
        if prefix:
            state_dict = _load_checkpoint_with_prefix(
                prefix, checkpoint, map_location='cpu')
        else:
            state_dict = _load_checkpoint(checkpoint, map_location='cpu')
            state_dict = state_dict.get('state_dict', state_dict)
        own = self.state_dict()
        unbuilt = [f'{name}.' for name in self.all_stage_names
                   if name not in self.stage_names]
        mismatch = compare_state_dicts(state_dict, own, unbuilt)
        if mismatch:
            raise ValueError(
                f'The checkpoint {checkpoint} (prefix {prefix!r}) does not '
                f'fit this EdgeFormer-{self.arch_name}: {mismatch.report()}'
                '\nOfficial checkpoints need converting first (see '
                'docs/official_checkpoints.md).')
        self.load_state_dict({key: state_dict[key] for key in own})
        self._is_init = True

    @classmethod
    def _parse_arch(cls, arch) -> dict:
        if isinstance(arch, str):
            if arch.lower() not in cls.arch_settings:
                raise ValueError(
                    f'Unknown EdgeFormer arch {arch!r}; choose one of '
                    f'{sorted(cls.arch_settings)} or pass a custom dict.')
            return copy.deepcopy(cls.arch_settings[arch.lower()])
        if not isinstance(arch, dict):
            raise TypeError(
                f'arch must be a str or a dict, got {type(arch).__name__}')

        expected = set(cls.arch_settings['s'])
        if set(arch) != expected:
            raise ValueError(
                f'A custom EdgeFormer arch needs exactly the keys '
                f'{sorted(expected)}, got {sorted(arch)}')
        arch = copy.deepcopy(arch)
        for key in ('stem_channels', 'stem_kernel_size'):
            check_positive_int(arch[key], f'arch[{key!r}]')
        if arch['stem_kernel_size'] % 2 == 0:
            raise ValueError(f"arch['stem_kernel_size'] must be odd, got "
                             f"{arch['stem_kernel_size']}")
        if arch['fusion'] not in ('concat', 'add'):
            raise ValueError(f"arch['fusion'] must be 'concat' or 'add', got "
                             f"{arch['fusion']!r}")
        layers = arch['layers']
        if not isinstance(layers, (list, tuple)) or len(layers) != 5:
            raise ValueError("arch['layers'] must be a list of 5 layer specs, "
                             f'got {layers!r}')
        for i, spec in enumerate(layers):
            cls._check_layer_spec(spec, f"arch['layers'][{i}]")
        return arch

    @staticmethod
    def _check_layer_spec(spec, where: str):
        fields = {
            'mv2': ('out_channels', 'stride', 'num_blocks'),
            'parc': ('out_channels', 'stride', 'global_channels',
                     'ffn_channels', 'num_gcc_blocks', 'meta_kernel_size'),
        }
        if not isinstance(spec, (list, tuple)) or not spec or \
                spec[0] not in fields:
            raise ValueError(
                f"{where} must be ['mv2', {', '.join(fields['mv2'])}] or "
                f"['parc', {', '.join(fields['parc'])}], got {spec!r}")
        names = fields[spec[0]]
        if len(spec) != len(names) + 1:
            raise ValueError(f"{where}: a {spec[0]!r} spec has the fields "
                             f'{list(names)}, got {spec!r}')
        for name, value in zip(names, spec[1:]):
            check_positive_int(value, f'{where} {name}')
        if spec[2] not in (1, 2):
            raise ValueError(f'{where} stride must be 1 or 2, got {spec[2]}')
        if spec[0] == 'parc' and spec[3] % 2:
            raise ValueError(f'{where} global_channels must be even (the GCC '
                             f'blocks split them in two), got {spec[3]}')

    @classmethod
    def _parse_out_indices(cls, out_indices) -> list:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        if not isinstance(out_indices, Sequence) or not out_indices:
            raise TypeError('out_indices must be an int or a non-empty '
                            f'sequence of ints, got {out_indices!r}')
        parsed = []
        for index in out_indices:
            if not isinstance(index, int) or not (
                    -cls.num_stages <= index < cls.num_stages):
                raise ValueError(
                    f'out_indices must be ints from {-cls.num_stages} to '
                    f'{cls.num_stages - 1} (stages: stem, layer1-5, '
                    f'conv_1x1_exp), got {out_indices!r}')
            parsed.append(index % cls.num_stages)
        return sorted(set(parsed))

    def forward(self, x: Tensor) -> tuple:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'EdgeFormer expects an input of shape (N, {self.in_channels}'
                f', H, W), got {tuple(x.shape)}')
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self):
        for name in self.stage_names[:self.frozen_stages + 1]:
            stage = getattr(self, name)
            stage.eval()
            for param in stage.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
