"""What the ParC backbones share: deploy mode and the ParC initialisation."""
from ..layers.parc import ParCMixer, ParCOperator
from .deploy_mixin import InputSizeDeployMixin


class ParCBackboneMixin(InputSizeDeployMixin):
    """Mixin of a ConvNet backbone whose last blocks hold :class:`ParCMixer`
    modules: :meth:`switch_to_deploy` bakes them, and :meth:`init_weights`
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
