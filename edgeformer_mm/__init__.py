"""EdgeFormer (ParC-Net) for the OpenMMLab ecosystem.

Importing the package registers its models, data components and transforms
(see :mod:`edgeformer_mm.registry`), registers the EdgeFormer model names
with mmpretrain's model hub (:mod:`edgeformer_mm.utils.model_hub`) and lets
torch's weights-only loading read mmengine checkpoints, which resuming needs
(:mod:`edgeformer_mm.utils.checkpoint`).
"""
from . import datasets, engine, models  # noqa: F401  (registers them)
from .utils.checkpoint import allow_mmengine_checkpoints
from .utils.model_hub import register_models
from .version import __version__

register_models()
allow_mmengine_checkpoints()

__all__ = ['__version__']
