"""Evaluate a checkpoint with an mmpretrain, mmdet or mmseg config.

Prints the config's test metrics (top-1/top-5, COCO bbox mAP, mIoU).

Example:
    python tools/test.py \\
        configs/mmpretrain/edgeformer/edgeformer-s_8xb128_in1k.py \\
        work_dirs/edgeformer-s_8xb128_in1k/epoch_300.pth
"""
import argparse
import sys

from edgeformer_mm.utils import (add_runner_arguments, build_runner,
                                 check_checkpoint_fits, config_from_args)
from edgeformer_mm.utils.checkpoint import CheckpointFileError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out', help='also dump the predictions to this pickle file')
    parser.add_argument(
        '--check-only',
        action='store_true',
        help='only check that the checkpoint is complete and fits the '
        'config\'s model (tools/dist_test.sh does, before it starts the '
        'processes)')
    add_runner_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args)
    try:
        check_checkpoint_fits(cfg, args.checkpoint)
    except CheckpointFileError as error:
        sys.exit(f'error: {error}')
    if args.check_only:
        return
    cfg.load_from = args.checkpoint
    if args.out:
        evaluators = cfg.test_evaluator
        if not isinstance(evaluators, list):
            evaluators = [evaluators]
        cfg.test_evaluator = [
            *evaluators,
            dict(type='DumpResults', out_file_path=args.out)
        ]

    build_runner(cfg).test()


if __name__ == '__main__':
    main()
