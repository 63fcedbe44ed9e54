"""ParC-MobileNetV2: MobileNetV2 with ParC blocks (EdgeFormer / ParC-Net,
ECCV 2022)."""
import math

from mmpretrain.models.backbones import MobileNetV2

from ...registry import MODELS, register
from .parc_backbone import ParCBackboneMixin


@register(MODELS)
class ParCMobileNetV2(ParCBackboneMixin, MobileNetV2):
    """ParC-MobileNetV2 backbone.

    The MobileNetV2 of mmpretrain whose last inverted residual blocks have a
    :class:`ParCMixer` (two position aware global circular convolutions,
    each depthwise over half of the channels) instead of their depthwise
    3x3 conv, as in `EdgeFormer: Improving Light-weight ConvNets by Learning
    from Vision Transformers <https://arxiv.org/abs/2203.03952>`_ (later
    ParC-Net), table 3, and the authors' reference definition
    ``ParC_mobilenetv2.py``: the last 2 of the 4 blocks of layer4 and the
    last block of layer5 and of layer6, positional embeddings in the first
    ParC block of each layer. It has 3,532,136 parameters with a 1000-class
    head (the paper: 3.5 M; MobileNetV2: 3,504,872).

    Args:
        parc_start_blocks (Sequence[int]): Per layer (7), the index of the
            first ParC block (the layer's number of blocks: none).
            Defaults to the reference ``(1, 2, 3, 2, 2, 2, 1)``.
        pe_blocks (str): ``'first'``: the first ParC block of a layer adds
            positional embeddings (the reference), or ``'all'`` of them.
            Defaults to ``'first'``.
        meta_input_size (int): Input size whose layer maps give the length of
            the meta kernels and embeddings: the reference fixes them to the
            maps of 224x224 inputs (14 in layers 4 and 5, 7 in layer 6); here
            they are resized to the maps of any input. Defaults to 224.
        deploy_input_size (tuple[int, int], optional): ``(H, W)`` that
            :meth:`switch_to_deploy` without an argument bakes the model for.
            Defaults to None.
        **kwargs: The arguments of mmpretrain's ``MobileNetV2``
            (``widen_factor``, ``out_indices``, ``frozen_stages``,
            ``norm_eval``, ...).

    Example:
        >>> import torch
        >>> from edgeformer_mm.models import ParCMobileNetV2
        >>> model = ParCMobileNetV2(out_indices=(5, 7)).eval()
        >>> for out in model(torch.rand(1, 3, 224, 288)):
        ...     print(tuple(out.shape))
        (1, 160, 7, 9)
        (1, 1280, 7, 9)
    """

    reference_start_blocks = (1, 2, 3, 2, 2, 2, 1)

    def __init__(self,
                 parc_start_blocks=reference_start_blocks,
                 pe_blocks: str = 'first',
                 meta_input_size: int = 224,
                 deploy_input_size=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.insert_parc_mixers([setting[2] for setting in self.arch_settings],
                                parc_start_blocks, pe_blocks, meta_input_size,
                                deploy_input_size)

    def parc_site(self, stage, block):
        # The depthwise ConvModule (conv, BN, ReLU6) of the block; the stem
        # has stride 2.
        depthwise = getattr(self, self.layers[stage])[block].conv[-2]
        stride = 2 * math.prod(
            setting[3] for setting in self.arch_settings[:stage + 1])
        return depthwise, 'conv', stride
