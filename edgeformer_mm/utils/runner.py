"""Shared logic of the tools (train, test, model converters)."""
import argparse
import importlib
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS, DefaultScope
from mmengine.runner import Runner

# Where each data set type is expected, for the error message when it is
# missing (the configs use these roots; docs/data_sets.md says more).
DATA_HINTS = {
    'ImageNet':
    'ImageNet-1k in mmpretrain layout: train/, val/ and meta/'
    '{train,val}.txt',
    'CocoDataset':
    'COCO 2017: annotations/, train2017/, val2017/',
    'CustomDataset':
    'an ImageNet-format folder',
    'PascalVOCDataset':
    'PASCAL VOC 2012 (VOCdevkit/VOC2012) with the SBD '
    'annotations converted by mmseg (SegmentationClassAug/, '
    'ImageSets/Segmentation/aug.txt)',
    'CityscapesDataset':
    'Cityscapes (leftImg8bit/, gtFine/ with the '
    '*_labelTrainIds.png maps from mmseg)',
}


def _datasets(key: str, dataset_cfg):
    """(config key, config) of a dataset and of the datasets it wraps (one
    ``dataset`` or, as ``ConcatDataset``, a list of ``datasets``)."""
    if dataset_cfg is None:
        return
    yield key, dataset_cfg
    yield from _datasets(f'{key}.dataset', dataset_cfg.get('dataset'))
    for i, wrapped in enumerate(dataset_cfg.get('datasets') or []):
        yield from _datasets(f'{key}.datasets.{i}', wrapped)


def check_data_roots(cfg: Config):
    """Raise a clear error if a dataloader's ``data_root`` does not exist.

    Without this, a missing data set fails deep inside the dataset class
    with a message that does not say where the data should be.
    """
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if not loader:
            continue
        for key, dataset in _datasets(f'{field}.dataset',
                                      loader.get('dataset')):
            data_root = dataset.get('data_root')
            if data_root and not osp.isdir(data_root):
                kind = dataset.get('type', '')
                hint = DATA_HINTS.get(str(kind), 'the data set')
                raise FileNotFoundError(
                    f'{field}: data_root {data_root!r} does not exist. Put '
                    f'{hint} there (relative paths start from the current '
                    f'directory), or point the config elsewhere with '
                    f'--cfg-options {key}.data_root=PATH (see '
                    'docs/data_sets.md).')


def build_model(config):
    """Build ``config.model`` (a Config or a config file) with the registry
    of the codebase its ``default_scope`` names (mmpretrain, mmdet, mmseg),
    under that scope."""
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    scope = cfg.get('default_scope', 'mmpretrain')
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(cfg.model)


def check_checkpoint_fits(cfg: Config, checkpoint: str) -> None:
    """Raise :class:`~edgeformer_mm.utils.checkpoint.CheckpointFileError`
    with a one-line message unless ``checkpoint`` is a complete checkpoint
    file of ``cfg``'s model (mmengine would load another model's weights
    non-strictly, with a warning, and evaluate a partly random model)."""
    import torch

    from .checkpoint import CheckpointFileError, check_checkpoint_file
    from .state_dict import compare_state_dicts
    check_checkpoint_file(checkpoint)
    state_dict = torch.load(checkpoint, map_location='cpu')
    if not isinstance(state_dict, dict):
        raise CheckpointFileError(f'{checkpoint} holds no state dict')
    state_dict = state_dict.get('state_dict', state_dict)
    mismatch = compare_state_dicts(state_dict, build_model(cfg).state_dict())
    if mismatch:
        example = mismatch.listing(limit=1).split('\n')[1].strip()
        raise CheckpointFileError(
            f'{checkpoint} does not fit the model of the config: '
            f'{mismatch.counts()} (first: {example})')


def build_runner(cfg: Config) -> Runner:
    """Build the runner the config asks for (``runner_type``), by default
    :class:`~edgeformer_mm.engine.EdgeFormerRunner`."""
    from edgeformer_mm.engine import EdgeFormerRunner
    check_data_roots(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return EdgeFormerRunner.from_cfg(cfg)


def make_deterministic(cfg: Config) -> None:
    """Set ``cfg`` up so that training is reproducible, also across resumes.

    mmengine's deterministic mode (``randomness.deterministic``), a fixed
    seed (0 unless the config has one: the data samplers are seeded with it
    before a checkpoint could restore another), the random generators seeded
    at each epoch's start (:class:`~edgeformer_mm.engine.EpochSeedHook`) and
    data loader workers that are started anew each epoch. A run resumed from
    an epoch's checkpoint then ends bitwise like one never stopped (on CPU;
    GPU kernels may still differ from run to run).
    """
    randomness = dict(cfg.get('randomness') or {}, deterministic=True)
    if randomness.get('seed') is None:
        randomness['seed'] = 0
    cfg.randomness = randomness
    cfg.custom_hooks = [
        *(cfg.get('custom_hooks') or []),
        dict(type='edgeformer_mm.EpochSeedHook')
    ]
    if cfg.train_dataloader.get('num_workers', 0) > 0:
        cfg.train_dataloader.persistent_workers = False


def add_runner_arguments(parser: argparse.ArgumentParser):
    """Add the options every tool takes: work dir, config overrides and
    distributed launcher."""
    parser.add_argument(
        '--work-dir',
        help='where logs, checkpoints and metrics go (default: '
        'work_dirs/<config name>)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. train_cfg.max_epochs=10')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher for distributed runs')
    # torch.distributed.launch passes --local-rank (or --local_rank).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def config_from_args(args: argparse.Namespace) -> Config:
    """Load ``args.config`` with the options of :func:`add_runner_arguments`
    applied."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg
