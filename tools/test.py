"""Evaluate a checkpoint with an mmpretrain, mmdet or mmseg config.

Prints the config's test metrics (top-1/top-5, COCO bbox mAP, mIoU).

Example:
    python tools/test.py \\
        configs/mmpretrain/edgeformer/edgeformer-s_8xb128_in1k.py \\
        work_dirs/edgeformer-s_8xb128_in1k/epoch_300.pth
"""
import argparse

from edgeformer_mm.utils import (add_runner_arguments, build_runner,
                                 config_from_args)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out', help='also dump the predictions to this pickle file')
    add_runner_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args)
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
