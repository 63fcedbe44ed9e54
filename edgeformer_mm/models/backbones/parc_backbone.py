"""What the ParC backbones share: inserting the ParC mixers, deploy mode and
the ParC initialisation."""
from typing import Sequence, Tuple

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..layers.parc import ParCMixer, ParCOperator, plan_parc_blocks
from .deploy_mixin import InputSizeDeployMixin


class ParCBackboneMixin(InputSizeDeployMixin):
    """Mixin of a ConvNet backbone whose last blocks hold :class:`ParCMixer`
    modules.

    The backbone builds its host network, then calls
    :meth:`insert_parc_mixers`, which asks :meth:`parc_site` where each
    block's spatial conv is. :meth:`switch_to_deploy` bakes the mixers (and
    the BatchNorm after each, see :meth:`fold_norms`), and
    :meth:`init_weights` initialises their operators as the reference does
    after the host network's own initialisation (unless weights are
    loaded).
    """

    deploy_module_type = ParCMixer
    # ParCMixer arguments particular to the host network.
    parc_mixer_cfg = {}

    def parc_site(self, stage: int, block: int) -> Tuple[nn.Module, str, int]:
        """Where the spatial conv of ``block`` of ``stage`` is: the module
        holding it, its attribute name, and the block's stride relative to
        the input (which scales ``meta_input_size`` to the block's map)."""
        raise NotImplementedError

    def insert_parc_mixers(self, num_blocks: Sequence[int],
                           parc_start_blocks: Sequence[int], pe_blocks: str,
                           meta_input_size: int, deploy_input_size):
        """Replace the spatial conv of the blocks that
        :func:`plan_parc_blocks` picks by a :class:`ParCMixer` of as many
        channels, and set up deploy mode; see the backbones' arguments."""
        self.init_deploy(deploy_input_size)
        plan = plan_parc_blocks(num_blocks, parc_start_blocks, pe_blocks)
        for (stage, block), use_pe in plan.items():
            parent, name, stride = self.parc_site(stage, block)
            setattr(
                parent, name,
                ParCMixer(
                    getattr(parent, name).in_channels,
                    meta_input_size // stride, use_pe,
                    **self.parc_mixer_cfg))
        self.parc_start_blocks = tuple(parc_start_blocks)
        # The new modules of frozen stages must be frozen too.
        self._freeze_stages()

    def init_weights(self):
        super().init_weights()
        init_cfg = self.init_cfg
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            return
        for module in self.modules():
            if isinstance(module, ParCOperator):
                module.reset_parameters()

    def fold_norms(self):
        """Fold the BatchNorm that follows each baked ParC mixer (the next
        module registered beside it, as in mmpretrain's bottleneck and
        ConvModule) into the mixer: mmcv's ``fuse_conv_bn`` only folds into
        an ``nn.Conv2d``."""
        for parent in self.modules():
            children = list(parent.named_children())
            for (_, mixer), (name, norm) in zip(children, children[1:]):
                if isinstance(mixer, ParCMixer) and isinstance(
                        norm, _BatchNorm):
                    mixer.fold_norm(norm)
                    setattr(parent, name, nn.Identity())
