"""SSDLite neck in the layout of ml-cvnets' SSD (MobileViT, EdgeFormer)."""
from collections.abc import Sequence
from typing import Optional, Tuple, Union

from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...registry import MODELS, register


@register(MODELS)
class SSDLiteNeck(BaseModule):
    """SSDLite neck of the official EdgeFormer (and MobileViT) detectors.

    Each backbone feature is projected to its output width by a 1x1 conv
    (norm, activation) where the widths differ, else passed through. The
    extra levels grow from the last backbone feature as it is, unprojected:
    each is a separable conv (3x3 depthwise with stride 2 and norm but no
    activation, then 1x1 with norm and activation). With ``global_pool`` the
    last level is global average pooling followed by a 1x1 conv without
    bias or norm, with activation.

    mmdet's ``SSDNeck`` cannot express this: it passes the backbone features
    through unchanged, starts every extra level with a 1x1 conv and has no
    global-pool level.

    Args:
        in_channels (Sequence[int]): Channels of the backbone features.
        out_channels (Sequence[int]): Channels of all output levels: one per
            backbone feature, then one per extra level.
        global_pool (bool): Whether the last level is the global-pool level.
            Defaults to True.
        norm_cfg (dict): Config of the norm layers.
            Defaults to ``dict(type='BN')``.
        act_cfg (dict): Config of the activations.
            Defaults to ``dict(type='ReLU')``.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to Xavier uniform convs with zero biases, as officially.

    Example:
        >>> import torch
        >>> neck = SSDLiteNeck((128, 160), (512, 256, 256, 128, 128, 64))
        >>> outs = neck((torch.rand(1, 128, 20, 20),
        ...              torch.rand(1, 160, 10, 10)))
        >>> print([o.shape[1] for o in outs], [o.shape[-1] for o in outs])
        [512, 256, 256, 128, 128, 64] [20, 10, 5, 3, 2, 1]
    """

    def __init__(self,
                 in_channels: Sequence,
                 out_channels: Sequence,
                 global_pool: bool = True,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 init_cfg: Optional[Union[dict, list]] = dict(
                     type='Xavier',
                     layer='Conv2d',
                     distribution='uniform',
                     bias=0)):
        super().__init__(init_cfg)
        in_channels, out_channels = tuple(in_channels), tuple(out_channels)
        num_extra = len(out_channels) - len(in_channels)
        if not in_channels or num_extra < int(global_pool):
            raise ValueError(
                'SSDLiteNeck needs at least one input and one output per '
                'input (plus one for the global-pool level), got '
                f'in_channels={in_channels}, out_channels={out_channels}')
        self.in_channels = in_channels
        self.out_channels = out_channels

        self.input_projs = nn.ModuleList([
            nn.Identity() if cin == cout else ConvModule(
                cin, cout, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)
            for cin, cout in zip(in_channels, out_channels)
        ])
        self.extra_levels = nn.ModuleList()
        channels = in_channels[-1]
        for i, cout in enumerate(out_channels[len(in_channels):]):
            if global_pool and i == num_extra - 1:
                # No norm: the pooled map has one value per channel.
                level = nn.Sequential(
                    nn.AdaptiveAvgPool2d(1),
                    ConvModule(
                        channels,
                        cout,
                        1,
                        bias=False,
                        norm_cfg=None,
                        act_cfg=act_cfg))
            else:
                level = DepthwiseSeparableConvModule(
                    channels,
                    cout,
                    3,
                    stride=2,
                    padding=1,
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg,
                    dw_act_cfg=None)
            self.extra_levels.append(level)
            channels = cout

    def forward(self, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'SSDLiteNeck expects {len(self.in_channels)} '
                             f'features, got {len(inputs)}')
        outs = [proj(x) for proj, x in zip(self.input_projs, inputs)]
        x = inputs[-1]
        for level in self.extra_levels:
            x = level(x)
            outs.append(x)
        return tuple(outs)
