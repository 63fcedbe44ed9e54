"""DeepLabV3 head with the paper's 1x1 projection (as ml-cvnets has it)."""
import torch
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads import ASPPHead
from mmseg.models.utils import resize
from torch import Tensor, nn

from ...registry import MODELS, register


@register(MODELS)
class DeepLabV3Head(ASPPHead):
    """ASPP head of `DeepLabV3 <https://arxiv.org/abs/1706.05587>`_ as the
    official EdgeFormer segmentor (ml-cvnets) builds it.

    Three differences from mmseg's :class:`ASPPHead`, each following the
    official model so that its weights convert exactly:

    - The concatenated branches are projected by a ``bottleneck_kernel_size``
      conv, 1x1 as in the DeepLabV3 paper (mmseg's head uses 3x3).
    - The branches are concatenated in the official order: the ASPP convs
      (the 1x1 one first), then the image pooling branch (mmseg puts the
      pooling first).
    - Dropout (element-wise, ``bottleneck_dropout``) follows the projection,
      before the usual ``dropout_ratio`` (channel-wise) of the classifier.

    Args:
        bottleneck_kernel_size (int): Kernel size of the projection after
            the concatenation. Defaults to 1.
        bottleneck_dropout (float): Dropout probability after the
            projection. Defaults to 0.1.
        init_cfg (dict | list[dict]): Initialization config. Defaults to the
            official one: Kaiming normal (fan out) for every conv, the
            classifier included, with zero biases.
        **kwargs: Arguments of :class:`mmseg.models.decode_heads.ASPPHead`.

    Example:
        >>> import torch
        >>> head = DeepLabV3Head(in_channels=160, channels=256,
        ...                      num_classes=21)
        >>> print(tuple(head([torch.rand(1, 160, 32, 32)]).shape))
        (1, 21, 32, 32)
    """

    def __init__(self,
                 bottleneck_kernel_size: int = 1,
                 bottleneck_dropout: float = 0.1,
                 init_cfg=dict(
                     type='Kaiming',
                     layer='Conv2d',
                     mode='fan_out',
                     nonlinearity='relu',
                     bias=0),
                 **kwargs):
        super().__init__(init_cfg=init_cfg, **kwargs)
        self.bottleneck = ConvModule(
            (len(self.dilations) + 1) * self.channels,
            self.channels,
            bottleneck_kernel_size,
            padding=bottleneck_kernel_size // 2,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)
        self.bottleneck_dropout = (
            nn.Dropout(bottleneck_dropout)
            if bottleneck_dropout > 0 else nn.Identity())

    def _forward_feature(self, inputs) -> Tensor:
        x = self._transform_inputs(inputs)
        pooled = resize(
            self.image_pool(x),
            size=x.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)
        feats = torch.cat([*self.aspp_modules(x), pooled], dim=1)
        return self.bottleneck_dropout(self.bottleneck(feats))
