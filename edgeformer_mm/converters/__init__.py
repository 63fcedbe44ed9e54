"""Converters of checkpoints written by other code bases."""
from .official_checkpoint import (ConversionError, convert_official_state_dict,
                                  guess_task, read_official_checkpoint)

__all__ = [
    'ConversionError', 'convert_official_state_dict', 'guess_task',
    'read_official_checkpoint'
]
