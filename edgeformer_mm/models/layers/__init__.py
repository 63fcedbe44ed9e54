from .gcc import (AxialPositionalEmbedding, GlobalCircularConv,
                  global_circular_conv, resize_meta)
from .gcc_block import ChannelAttention, GCCBlock, GCCBranch

__all__ = [
    'AxialPositionalEmbedding', 'ChannelAttention', 'GCCBlock', 'GCCBranch',
    'GlobalCircularConv', 'global_circular_conv', 'resize_meta'
]
