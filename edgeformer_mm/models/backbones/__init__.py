from .edgeformer import EdgeFormer, ParCStage
from .parc_convnext import ParCConvNeXt
from .parc_mobilenet_v2 import ParCMobileNetV2
from .parc_resnet import ParCResNet

__all__ = [
    'EdgeFormer', 'ParCConvNeXt', 'ParCMobileNetV2', 'ParCResNet', 'ParCStage'
]
