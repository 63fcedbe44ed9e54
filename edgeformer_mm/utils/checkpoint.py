"""Loading mmengine checkpoints with torch's safe (weights-only) unpickler.

Since torch 2.6, ``torch.load`` only unpickles allow-listed types, and
mmengine 0.10 checkpoints (``resume``, ``load_from``) hold a few more: the
message hub's ``HistoryBuffer`` with its numpy arrays, and numpy scalars.
:func:`allow_mmengine_checkpoints` adds exactly those to the allow list;
everything else stays refused, so the safety of weights-only loading is kept.
"""
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

try:  # numpy >= 2
    from numpy._core import multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray


def _history_buffer_getattr(obj, name: str):
    """``getattr`` limited to what a pickled HistoryBuffer asks for.

    A HistoryBuffer pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')`` and so on; a general ``getattr``
    would let a checkpoint reach anything.
    """
    # The four built-in statistics are only put in _statistics_methods when
    # the first HistoryBuffer is created; custom ones when registered.
    allowed = {'min', 'max', 'current', 'mean'}
    allowed.update(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint: '
        f'only HistoryBuffer statistics methods are allowed')


def _numpy_globals():
    objects = [np.ndarray, np.dtype, multiarray._reconstruct,
               multiarray.scalar]
    # The dtype classes that numpy scalars and arrays in checkpoints use.
    objects += [
        type(np.dtype(t)) for t in (np.float16, np.float32, np.float64,
                                    np.int32, np.int64, np.bool_)
    ]
    # Checkpoints written with numpy 1.x name numpy.core.multiarray.
    objects += [(multiarray._reconstruct,
                 'numpy.core.multiarray._reconstruct'),
                (multiarray.scalar, 'numpy.core.multiarray.scalar')]
    return objects


def mmengine_checkpoint_globals() -> list:
    """The globals an mmengine checkpoint needs beyond torch's defaults."""
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')
            ] + _numpy_globals()


def allow_mmengine_checkpoints():
    """Allow-list the globals of mmengine checkpoints for ``torch.load``."""
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
