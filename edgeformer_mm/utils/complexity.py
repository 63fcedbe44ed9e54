"""Model complexity figures."""
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (shared ones counted once)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on ``inputs``.

    Counts convolutions (functional ones too, so every GCC is included),
    linear layers and matrix products with PyTorch's FlopCounterMode, halved
    to get MACs; element-wise work (norms, activations, additions) is not
    counted. This is how the official models' figures in
    docs/faithfulness.md were counted.
    """
    counter = FlopCounterMode(display=False)
    with counter:
        model(inputs)
    return counter.get_total_flops() // 2
