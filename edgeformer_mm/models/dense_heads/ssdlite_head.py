"""mmdet's SSD head, fixed for inference, with optional plain 1x1 levels."""
from collections.abc import Sequence

from mmdet.models.dense_heads import SSDHead
from torch import nn

from ...registry import MODELS, register


@register(MODELS)
class SSDLiteHead(SSDHead):
    """:class:`mmdet.models.dense_heads.SSDHead` that can predict.

    mmdet 3.3.0's ``SSDHead`` fails in ``predict`` with "object has no
    attribute 'loss_cls'" (open-mmlab/mmdetection#11063, #11780):
    ``SSDHead.__init__`` skips ``AnchorHead.__init__``, the only place that
    sets ``loss_cls`` (SSD computes its loss itself), but
    ``BaseDenseHead._predict_by_feat_single`` evaluates
    ``getattr(self.loss_cls, 'custom_cls_channels', False)``, whose first
    argument raises. This head sets ``loss_cls`` to None, so that lookup
    falls back to False and scores are the usual softmax.

    It can also make chosen levels predict with a single 1x1 conv (with
    bias) instead of the depthwise 3x3 conv and 1x1 conv of
    ``use_depthwise=True``. The official EdgeFormer (ml-cvnets) SSD does this
    on its globally pooled 1x1 level, where a 3x3 kernel would only see
    zero padding and a norm layer would have one value per channel and
    image.

    Args:
        plain_levels (Sequence[int]): Levels (from 0) that predict with a
            single 1x1 conv. Defaults to ``()``.
        **kwargs: Arguments of :class:`mmdet.models.dense_heads.SSDHead`.
    """

    def __init__(self, plain_levels: Sequence = (), **kwargs):
        # _init_layers, called by SSDHead.__init__, reads it.
        self.plain_levels = tuple(plain_levels)
        super().__init__(**kwargs)
        self.loss_cls = None

    def _init_layers(self) -> None:
        """Build the predictors, plain 1x1 convs on ``plain_levels``."""
        super()._init_layers()
        num_levels = len(self.in_channels)
        for level in self.plain_levels:
            if not isinstance(level, int) or not 0 <= level < num_levels:
                raise ValueError(f'plain_levels must be ints from 0 to '
                                 f'{num_levels - 1}, got {self.plain_levels}')
            channels = self.in_channels[level]
            num_priors = self.num_base_priors[level]
            # In a Sequential like the other levels' predictors.
            self.cls_convs[level] = nn.Sequential(
                nn.Conv2d(channels, num_priors * self.cls_out_channels, 1))
            self.reg_convs[level] = nn.Sequential(
                nn.Conv2d(channels, num_priors * 4, 1))
