from mmpretrain.models.heads import LinearClsHead
from torch import Tensor, nn

from ...registry import MODELS, register


@register(MODELS)
class DropoutLinearClsHead(LinearClsHead):
    """Linear classifier head with dropout before the linear layer.

    The classifier of EdgeFormer (and MobileViT): pooled features, dropout,
    linear. ``pre_logits`` stays the dropout-free feature, as feature
    extraction expects.

    Loading a checkpoint whose classifier has another number of classes
    raises a ``ValueError`` that says so, instead of mmengine's warning and a
    silently random classifier.

    Args:
        num_classes (int): Number of categories.
        in_channels (int): Number of input channels.
        dropout_rate (float): Dropout probability. Defaults to 0.2.
        **kwargs: Other arguments of
            :class:`mmpretrain.models.heads.LinearClsHead`.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 dropout_rate: float = 0.2,
                 **kwargs):
        super().__init__(num_classes, in_channels, **kwargs)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, feats: tuple) -> Tensor:
        return self.fc(self.dropout(self.pre_logits(feats)))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        weight = state_dict.get(prefix + 'fc.weight')
        if weight is not None and weight.shape != self.fc.weight.shape:
            raise ValueError(
                f'The checkpoint\'s classifier ({prefix}fc) has '
                f'{weight.shape[0]} classes and {weight.shape[1]} input '
                f'channels, the model {self.num_classes} and '
                f'{self.in_channels}. Set model.head.num_classes (and '
                f'in_channels) to match, or, to fine-tune on other classes, '
                f'load the backbone only: model.backbone.init_cfg='
                f"dict(type='Pretrained', checkpoint=..., prefix='backbone.')")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
