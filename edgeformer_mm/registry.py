"""Registries of edgeformer_mm.

Each registry is a child of mmengine's root registry of its kind with the
scope ``edgeformer_mm``, so ``type='edgeformer_mm.X'`` builds from any
OpenMMLab registry. mmpretrain, mmdet and mmseg each search only their own
registry and its ancestors for an unscoped type, so :func:`register` also
registers each class in the root registry they all descend from: plain
``type='X'`` then builds from each of them too.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope='edgeformer_mm',
    locations=['edgeformer_mm.models'])
DATASETS = Registry(
    'dataset',
    parent=MMENGINE_DATASETS,
    scope='edgeformer_mm',
    locations=['edgeformer_mm.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler',
    parent=MMENGINE_DATA_SAMPLERS,
    scope='edgeformer_mm',
    locations=['edgeformer_mm.datasets'])
TRANSFORMS = Registry(
    'transform',
    parent=MMENGINE_TRANSFORMS,
    scope='edgeformer_mm',
    locations=['edgeformer_mm.datasets'])
RUNNERS = Registry(
    'runner',
    parent=MMENGINE_RUNNERS,
    scope='edgeformer_mm',
    locations=['edgeformer_mm.engine'])
HOOKS = Registry(
    'hook',
    parent=MMENGINE_HOOKS,
    scope='edgeformer_mm',
    locations=['edgeformer_mm.engine'])


def register(registry: Registry):
    """Class decorator registering in ``registry`` and in its root parent.

    Example:
        >>> @register(MODELS)
        ... class MyBackbone(BaseModule):
        ...     ...
    """

    def decorator(cls):
        registry.register_module(module=cls)
        registry.parent.register_module(module=cls)
        return cls

    return decorator
