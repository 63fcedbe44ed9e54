"""Train a model from an mmpretrain, mmdet or mmseg config.

Example:
    python tools/train.py \\
        configs/mmpretrain/edgeformer/edgeformer-s_8xb128_in1k.py
"""
import argparse
import sys

from edgeformer_mm.utils import (add_runner_arguments, build_runner,
                                 config_from_args, make_deterministic)
from edgeformer_mm.utils.checkpoint import CheckpointFileError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        help='resume from this checkpoint, or without a value from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size '
        'against the config\'s auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--deterministic',
        action='store_true',
        help='reproducible training: deterministic algorithms, fixed seeds '
        'and random generators seeded each epoch, so that a resumed run ends '
        'bitwise like an uninterrupted one (on CPU); use it for every run of '
        'a job')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate during training')
    add_runner_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    if args.deterministic:
        make_deterministic(cfg)
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None

    try:
        build_runner(cfg).train()
    except CheckpointFileError as error:  # --resume or load_from
        sys.exit(f'error: {error}')


if __name__ == '__main__':
    main()
