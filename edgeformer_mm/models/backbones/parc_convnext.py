"""ParC-ConvNeXt: ConvNeXt with ParC blocks (EdgeFormer / ParC-Net, ECCV
2022)."""
from mmpretrain.models.backbones import ConvNeXt

from ...registry import MODELS, register
from .parc_backbone import ParCBackboneMixin


@register(MODELS)
class ParCConvNeXt(ParCBackboneMixin, ConvNeXt):
    """ParC-ConvNeXt backbone.

    The ConvNeXt of mmpretrain whose last blocks have a :class:`ParCMixer`
    (two position aware global circular convolutions, each depthwise over
    half of the channels) instead of their depthwise 7x7 conv, as in
    `EdgeFormer: Improving Light-weight ConvNets by Learning from Vision
    Transformers <https://arxiv.org/abs/2203.03952>`_ (later ParC-Net),
    table 3, and the authors' reference definition ``ParC_convnext.py``: the
    last third of the blocks of the last two stages, every one with
    positional embeddings. The paper's ConvNeXt-XT is ConvNeXt-T at half
    width, arch ``'xtiny'`` (depths 3, 3, 9, 3; channels 48, 96, 192, 384);
    ParC-ConvNeXt-XT has 7,412,824 parameters with a 1000-class head (the
    paper: 7.4 M; ConvNeXt-XT: 7,438,360). The other archs of mmpretrain's
    ConvNeXt work too.

    Args:
        arch (str | dict): ``'xtiny'`` or an arch of mmpretrain's
            ``ConvNeXt``, or a dict with ``depths`` and ``channels``.
            Defaults to ``'xtiny'``.
        parc_start_blocks (Sequence[int], optional): Per stage, the index of
            the first ParC block (the depth: none). Defaults to the
            reference's rule, the last third of the last two stages (at
            least one block): ``(3, 3, 6, 2)`` for depths 3, 3, 9, 3.
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
        **kwargs: The arguments of mmpretrain's ``ConvNeXt``
            (``out_indices``, ``frozen_stages``, ``drop_path_rate``,
            ``gap_before_final_norm``, ...).

    Example:
        >>> import torch
        >>> from edgeformer_mm.models import ParCConvNeXt
        >>> model = ParCConvNeXt('xtiny', out_indices=(2, 3),
        ...                      gap_before_final_norm=False).eval()
        >>> for out in model(torch.rand(1, 3, 224, 288)):
        ...     print(tuple(out.shape))
        (1, 192, 14, 18)
        (1, 384, 7, 9)
    """

    arch_settings = {
        **ConvNeXt.arch_settings,
        'xtiny': {
            'depths': [3, 3, 9, 3],
            'channels': [48, 96, 192, 384]
        },
    }
    # ConvNeXt's own initialisation for the meta kernels.
    parc_mixer_cfg = dict(kernel_init='trunc_normal')

    def __init__(self,
                 arch='xtiny',
                 parc_start_blocks=None,
                 pe_blocks: str = 'all',
                 meta_input_size: int = 224,
                 deploy_input_size=None,
                 **kwargs):
        super().__init__(arch, **kwargs)
        if parc_start_blocks is None:
            last_two = self.num_stages - 2
            parc_start_blocks = [
                depth - max(1, depth // 3) if i >= last_two else depth
                for i, depth in enumerate(self.depths)
            ]
        self.insert_parc_mixers(self.depths, parc_start_blocks, pe_blocks,
                                meta_input_size, deploy_input_size)

    def parc_site(self, stage, block):
        # Each stage after the stem halves the map.
        stem_stride = self.downsample_layers[0][0].stride[0]
        return (self.stages[stage][block], 'depthwise_conv',
                stem_stride * 2**stage)
