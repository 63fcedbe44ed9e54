"""Registration: every class of edgeformer_mm builds by its plain name from
mmpretrain's, mmdet's and mmseg's registries, and none of their names clash
with ours."""
import importlib

import pytest
from mmengine.registry import DefaultScope

import edgeformer_mm
from edgeformer_mm import registry as ours

CODEBASES = ('mmpretrain', 'mmdet', 'mmseg')
KINDS = ('MODELS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS')


def our_classes(kind):
    classes = getattr(ours, kind).module_dict
    assert classes, f'nothing of edgeformer_mm is registered in {kind}'
    return classes


@pytest.mark.parametrize('codebase', CODEBASES)
@pytest.mark.parametrize('kind', KINDS)
def test_plain_names_build_our_classes(codebase, kind):
    # Importing the codebase's models, datasets and transforms registers all
    # their names: a clash would show as their class under one of ours.
    for module in ('models', 'datasets'):
        importlib.import_module(f'{codebase}.{module}')
    registry = getattr(importlib.import_module(f'{codebase}.registry'), kind)
    with DefaultScope.overwrite_default_scope(codebase):
        for name, cls in our_classes(kind).items():
            assert registry.get(name) is cls, (
                f'{codebase} resolves {name!r} to {registry.get(name)}')


@pytest.mark.parametrize('kind', KINDS)
def test_no_codebase_registers_our_names(kind):
    for codebase in CODEBASES:
        importlib.import_module(f'{codebase}.models')
        importlib.import_module(f'{codebase}.datasets')
        registry = getattr(
            importlib.import_module(f'{codebase}.registry'), kind)
        clashes = set(registry.module_dict) & set(our_classes(kind))
        assert not clashes, f'{codebase} also registers {sorted(clashes)}'


def test_scoped_names_build_our_classes():
    from mmdet.registry import MODELS
    assert MODELS.get('edgeformer_mm.EdgeFormer') is (
        edgeformer_mm.models.EdgeFormer)
