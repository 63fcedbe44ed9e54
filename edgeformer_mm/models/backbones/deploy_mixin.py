"""Deploy mode for backbones whose GCC modules are baked per map size."""
import torch
from mmcv.cnn import fuse_conv_bn
from torch import nn


class InputSizeDeployMixin:
    """``switch_to_deploy(input_size)`` for a backbone whose modules of type
    ``deploy_module_type`` each have ``switch_to_deploy(height, width)``
    (GCC blocks, ParC mixers): their kernels depend on the size of the map
    they see, so the backbone runs once at the input size to find it.

    The class sets ``deploy_module_type``; its ``__init__`` calls
    :meth:`init_deploy`. ``train(True)`` raises once the model is baked.
    """

    deploy_module_type = None

    def init_deploy(self, deploy_input_size=None):
        """Store the default size of :meth:`switch_to_deploy`.

        Args:
            deploy_input_size (tuple[int, int], optional): ``(H, W)`` that
                ``switch_to_deploy()`` without an argument bakes the model for
                (as mmdeploy calls it; tools/deploy.py sets it from a static
                deploy config). None: the model stays as it is, resizing its
                kernels to any input, and exports with dynamic shapes.
        """
        self.deploy_input_size = (None if deploy_input_size is None else
                                  tuple(deploy_input_size))
        # (H, W) once switch_to_deploy has baked the model for it.
        self.deployed_size = None

    @torch.no_grad()
    def switch_to_deploy(self, input_size=None):
        """Bake the model for inference on ``input_size`` (H, W) inputs.

        Each GCC module gets fixed kernels for the map it sees at that input
        size, with its norms and positional embeddings folded into them and
        into a bias: no kernel interpolation or embedding add is left, which
        makes a static graph for export and saves work at run time. Then
        :meth:`fold_norms` and mmcv's ``fuse_conv_bn`` fold the BatchNorms
        into the convolutions next to them. Outputs equal the original
        model's in eval mode up to rounding. The model is put in eval mode;
        it only runs at ``input_size`` afterwards, and cannot be trained.

        Args:
            input_size (tuple[int, int], optional): Height and width of the
                images. Defaults to ``deploy_input_size``; if that is None
                too, nothing changes.
        """
        input_size = input_size or self.deploy_input_size
        if input_size is None:
            return
        sizes = {}

        def record_size(module, args):
            sizes[module] = tuple(args[0].shape[2:])

        hooks = [
            module.register_forward_pre_hook(record_size)
            for module in self.modules()
            if isinstance(module, self.deploy_module_type)
        ]
        in_channels = next(module for module in self.modules()
                           if isinstance(module, nn.Conv2d)).in_channels
        self.eval()
        try:
            self(torch.zeros(1, in_channels, *input_size))
        finally:
            for hook in hooks:
                hook.remove()
        for module, (height, width) in sizes.items():
            module.switch_to_deploy(height, width)
        self.fold_norms()
        fuse_conv_bn(self)
        self.deployed_size = tuple(input_size)

    def fold_norms(self):
        """Fold the norms that ``fuse_conv_bn`` does not (it folds a
        BatchNorm into the convolution before it). Nothing by default."""

    def train(self, mode: bool = True):
        if mode and self.deployed_size is not None:
            raise RuntimeError(
                f'This {type(self).__name__} was switched to deploy mode '
                f'(inference at {self.deployed_size[0]}x'
                f'{self.deployed_size[1]}) and cannot be trained')
        # Some backbones' train() returns None; nn.Module's returns self.
        super().train(mode)
        return self
