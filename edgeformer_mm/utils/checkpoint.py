"""Checking and loading checkpoint files.

:func:`check_checkpoint_file` tells a complete checkpoint file from a missing,
empty, cut-off or other file, with a message that names it.

Loading mmengine checkpoints with torch's safe (weights-only) unpickler:

Since torch 2.6, ``torch.load`` only unpickles allow-listed types, and
mmengine 0.10 checkpoints (``resume``, ``load_from``) hold a few more: the
message hub's ``HistoryBuffer`` with its numpy arrays, and numpy scalars.
:func:`allow_mmengine_checkpoints` adds exactly those to the allow list;
everything else stays refused, so the safety of weights-only loading is kept.
"""
import os.path as osp
import pickle
import zipfile

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
    objects = [
        np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar
    ]
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
    return [HistoryBuffer,
            (_history_buffer_getattr, 'builtins.getattr')] + _numpy_globals()


def allow_mmengine_checkpoints():
    """Allow-list the globals of mmengine checkpoints for ``torch.load``."""
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())


class CheckpointFileError(ValueError):
    """A path that names no complete checkpoint file."""


def check_checkpoint_file(path: str) -> None:
    """Raise :class:`CheckpointFileError` unless ``path`` is a complete
    PyTorch checkpoint file.

    ``torch.save`` writes a zip archive whose directory comes last, so a file
    cut off while being written (a kill during saving) is not a zip; every
    member's checksum is verified too. Files of torch's older, non-zip format
    are checked by loading them.

    Args:
        path (str): The local path of the checkpoint.
    """
    if osp.isdir(path):
        raise CheckpointFileError(
            f'{path} is a directory, not a checkpoint file')
    if not osp.exists(path):
        raise CheckpointFileError(f'{path} does not exist')
    if osp.getsize(path) == 0:
        raise CheckpointFileError(f'{path} is empty')
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            damaged = str(error)
        if damaged is not None:
            raise CheckpointFileError(
                f'{path} is damaged ({damaged} fails its check)')
        return
    with open(path, 'rb') as f:
        zip_start = f.read(4) == b'PK\x03\x04'
    if zip_start:  # the start of an archive without its directory
        raise CheckpointFileError(
            f'{path} is cut off (killed while being written?)')
    try:
        torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:
        reason = str(error).splitlines()[0][:200]
        raise CheckpointFileError(
            f'{path} is not a PyTorch checkpoint ({reason})') from error
