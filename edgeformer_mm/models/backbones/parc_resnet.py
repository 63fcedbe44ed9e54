"""ParC-ResNet: ResNet with ParC blocks (EdgeFormer / ParC-Net, ECCV 2022)."""
import math

from mmpretrain.models.backbones import ResNet
from mmpretrain.models.backbones.resnet import Bottleneck

from ...registry import MODELS, register
from .parc_backbone import ParCBackboneMixin


@register(MODELS)
class ParCResNet(ParCBackboneMixin, ResNet):
    """ParC-ResNet backbone.

    The ResNet of mmpretrain whose last bottlenecks have a :class:`ParCMixer`
    (two position aware global circular convolutions, each over half of the
    channels, with a dense kernel) instead of their 3x3 conv, as in
    `EdgeFormer: Improving Light-weight ConvNets by Learning from Vision
    Transformers <https://arxiv.org/abs/2203.03952>`_ (later ParC-Net),
    table 3, and the authors' reference definition ``ParC_resnet50.py``:
    ParC-ResNet-50 replaces the last 3 of the 6 blocks of stage 3 and the
    last of the 3 blocks of stage 4, every one with positional embeddings.
    It has 23,737,640 parameters with a 1000-class head (the paper: 24 M;
    ResNet-50: 25,557,032).

    Args:
        depth (int): 50, 101 or 152 (bottleneck ResNets). Only 50 has a
            reference placement of ParC blocks; the others need
            ``parc_start_blocks``.
        parc_start_blocks (Sequence[int], optional): Per stage, the index of
            the first ParC block (the depth: none). Defaults to the
            reference ``(3, 4, 3, 2)`` for depth 50.
        pe_blocks (str): ``'all'`` ParC blocks add positional embeddings
            (the reference), or the ``'first'`` of each stage only.
            Defaults to ``'all'``.
        meta_input_size (int): Input size whose stage maps give the length of
            the meta kernels and embeddings: the reference fixes them to the
            maps of 224x224 inputs (14 in stage 3, 7 in stage 4); here they
            are resized to the maps of any input. Defaults to 224.
        deploy_input_size (tuple[int, int], optional): ``(H, W)`` that
            :meth:`switch_to_deploy` without an argument bakes the model for.
            Defaults to None.
        **kwargs: The arguments of mmpretrain's ``ResNet`` (``out_indices``,
            ``frozen_stages``, ``norm_eval``, ``strides``, ...).

    Example:
        >>> import torch
        >>> from edgeformer_mm.models import ParCResNet
        >>> model = ParCResNet(depth=50, out_indices=(2, 3)).eval()
        >>> for out in model(torch.rand(1, 3, 224, 288)):
        ...     print(tuple(out.shape))
        (1, 1024, 14, 18)
        (1, 2048, 7, 9)
    """

    reference_start_blocks = {50: (3, 4, 3, 2)}
    # Dense within each half, as in the reference.
    parc_mixer_cfg = dict(groups=1)

    def __init__(self,
                 depth: int,
                 parc_start_blocks=None,
                 pe_blocks: str = 'all',
                 meta_input_size: int = 224,
                 deploy_input_size=None,
                 **kwargs):
        if depth not in self.arch_settings or (self.arch_settings[depth][0]
                                               is not Bottleneck):
            raise ValueError(f'ParCResNet needs a bottleneck depth (50, 101 '
                             f'or 152), got {depth!r}')
        if parc_start_blocks is None:
            if depth not in self.reference_start_blocks:
                raise ValueError(
                    f'No reference placement of ParC blocks for depth '
                    f'{depth}: pass parc_start_blocks')
            parc_start_blocks = self.reference_start_blocks[depth]
        super().__init__(depth, **kwargs)
        self.insert_parc_mixers(self.stage_blocks, parc_start_blocks,
                                pe_blocks, meta_input_size, deploy_input_size)

    def parc_site(self, stage, block):
        # The bottleneck's 3x3 conv; the stem has stride 4.
        return (getattr(self, self.res_layers[stage])[block], 'conv2',
                4 * math.prod(self.strides[:stage + 1]))
