"""EdgeFormer (ParC-Net) for the OpenMMLab ecosystem.

Importing the package registers its models (see :mod:`edgeformer_mm.registry`).
"""
from . import models  # noqa: F401  (registers the models)
from .version import __version__

__all__ = ['__version__']
