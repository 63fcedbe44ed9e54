"""mmpretrain's attention layers in a form that ncnn can hold.

mmpretrain's :class:`MultiheadAttention` (MobileViT) and
:class:`ChannelMultiheadAttention` (EdgeNeXt) split q, k and v by reshaping
the qkv projection to a 5-D tensor (B, N, 3, heads, head_dims). ncnn holds
at most 4-D blobs, and pnnx leaves such a reshape unconverted, so these
models cannot be converted as they are. The forwards here chunk the
projection into q, k and v first and split each into heads in 4-D; they
compute the same results.
"""
import copy
import types
from typing import List

import torch.nn.functional as F
from mmpretrain.models.utils.attention import (ChannelMultiheadAttention,
                                               MultiheadAttention)
from torch import Tensor, nn


def _split_heads(module: nn.Module, x: Tensor) -> List[Tensor]:
    """q, k and v of the tokens ``x`` (B, N, C), each (B, heads, N,
    head_dims)."""
    batch, tokens, _ = x.shape
    return [
        part.reshape(batch, tokens, module.num_heads,
                     module.head_dims).transpose(1, 2)
        for part in module.qkv(x).chunk(3, dim=-1)
    ]


def _project(module: nn.Module, x: Tensor) -> Tensor:
    """The output projection of the heads ``x`` (B, N, heads, head_dims)."""
    batch, tokens = x.shape[:2]
    x = module.proj(x.reshape(batch, tokens, module.embed_dims))
    return module.proj_drop(x)


def _multihead_attention_forward(module: MultiheadAttention,
                                 x: Tensor) -> Tensor:
    """:meth:`MultiheadAttention.forward` in eval mode (no attention
    dropout), without 5-D tensors."""
    q, k, v = _split_heads(module, x)
    x = module.scaled_dot_product_attention(q, k, v).transpose(1, 2)
    x = module.out_drop(module.gamma1(_project(module, x)))
    if module.v_shortcut:
        x = v.squeeze(1) + x
    return x


def _channel_attention_forward(module: ChannelMultiheadAttention,
                               x: Tensor) -> Tensor:
    """:meth:`ChannelMultiheadAttention.forward` without 5-D tensors."""
    q, k, v = _split_heads(module, x)
    shortcut = v
    # Attention across the channels of each head: (B, heads, dims, N).
    q, k, v = (part.transpose(-2, -1) for part in (q, k, v))
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    weights = ((q @ k.transpose(-2, -1)) * module.scale).softmax(dim=-1)
    x = module.out_drop(_project(module, (weights @ v).permute(0, 3, 1, 2)))
    if module.v_shortcut:
        x = shortcut.squeeze(1) + x
    return x


# Exact types: a subclass may compute something else in its forward.
_FOUR_DIMENSIONAL_FORWARDS = {
    MultiheadAttention: _multihead_attention_forward,
    ChannelMultiheadAttention: _channel_attention_forward,
}


def with_four_dimensional_attention(model: nn.Module) -> nn.Module:
    """``model`` with its mmpretrain attention layers computed without
    5-D tensors, for ncnn.

    Args:
        model (nn.Module): The model, in eval mode.

    Returns:
        nn.Module: A copy of ``model`` whose :class:`MultiheadAttention` and
        :class:`ChannelMultiheadAttention` layers split q, k and v in 4-D,
        or ``model`` itself if it has no such layer (EdgeFormer, the ParC
        ConvNets), whose conversion thus stays as it was.
    """
    if not any(
            type(module) in _FOUR_DIMENSIONAL_FORWARDS
            for module in model.modules()):
        return model
    model = copy.deepcopy(model)
    for module in model.modules():
        forward = _FOUR_DIMENSIONAL_FORWARDS.get(type(module))
        if forward is not None:
            module.forward = types.MethodType(forward, module)
    return model
