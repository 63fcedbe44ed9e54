from .gcc import (AxialPositionalEmbedding, GlobalCircularConv,
                  global_circular_conv, resize_meta)
from .gcc_block import ChannelAttention, GCCBlock, GCCBranch
from .parc import ParCMixer, ParCOperator, plan_parc_blocks

__all__ = [
    'AxialPositionalEmbedding', 'ChannelAttention', 'GCCBlock', 'GCCBranch',
    'GlobalCircularConv', 'ParCMixer', 'ParCOperator', 'global_circular_conv',
    'plan_parc_blocks', 'resize_meta'
]
