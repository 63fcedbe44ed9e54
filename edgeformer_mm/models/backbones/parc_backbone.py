"""What the ParC backbones share: deploy mode and the ParC initialisation."""
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..layers.parc import ParCMixer, ParCOperator
from .deploy_mixin import InputSizeDeployMixin


class ParCBackboneMixin(InputSizeDeployMixin):
    """Mixin of a ConvNet backbone whose last blocks hold :class:`ParCMixer`
    modules: :meth:`switch_to_deploy` bakes them (and the BatchNorm after
    each, see :meth:`fold_norms`), and :meth:`init_weights`
    initialises their operators as the reference does after the host
    network's own initialisation (unless weights are loaded)."""

    deploy_module_type = ParCMixer

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
