"""Registries of edgeformer_mm.

``MODELS`` is a child of mmengine's root ``MODELS`` with the scope
``edgeformer_mm``, so ``type='edgeformer_mm.EdgeFormer'`` builds from any
OpenMMLab registry. mmpretrain, mmdet and mmseg each search only their own
registry and its ancestors for an unscoped type, so :func:`register_model`
also registers every model in the root registry they all descend from: plain
``type='EdgeFormer'`` then builds from each of them too.
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope='edgeformer_mm',
    locations=['edgeformer_mm.models'])


def register_model(cls):
    """Class decorator registering ``cls`` for scoped and unscoped builds."""
    MODELS.register_module(module=cls)
    MMENGINE_MODELS.register_module(module=cls)
    return cls
