from .edgeformer import EdgeFormer, EdgeFormerGlobalBlock
from .parc_convnext import ParCConvNeXt
from .parc_mobilenet_v2 import ParCMobileNetV2
from .parc_resnet import ParCResNet

__all__ = [
    'EdgeFormer', 'EdgeFormerGlobalBlock', 'ParCConvNeXt', 'ParCMobileNetV2',
    'ParCResNet'
]
