"""Training speed with 1 and 2 processes on this machine, side by side.

Each tiny config (classification, detection, segmentation) trains on
generated data with 1 process (tools/train.py) and with 2 (tools/
dist_train.sh; torchrun over gloo on a machine without GPUs), at the same
batch per process and with the cores shared out between the processes; the
process counts take turns in rounds so that drift hits them alike. From
each run's scalars.json, the median time per iteration after the warm-up;
per task and process count: time per iteration, images per iteration and
per second, and their ratios to 1 process. Writes scaling.md and
scaling.json to --work-dir, with the generated data (data/) and every
run's work dir (runs/). The runs, parsing and report are
edgeformer_mm.analysis.scaling's.

Time it on an idle machine: anything else running takes cores from some
runs and not others.

Examples:
    python tools/analysis/dist_scaling.py --work-dir work_dirs/dist_scaling
    python tools/analysis/dist_scaling.py --work-dir work_dirs/quick \\
        --tasks classification --quick
"""
import argparse
import os
import shlex
import sys

from edgeformer_mm.analysis.scaling import (SCALING_TASKS, run_scaling,
                                            write_report)

# --quick: a check that everything runs, not a measurement.
QUICK = dict(rounds=1, iters=2, warmup=1)


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/dist_scaling')
    parser.add_argument(
        '--tasks',
        nargs='+',
        default=list(SCALING_TASKS),
        choices=list(SCALING_TASKS))
    parser.add_argument(
        '--processes',
        nargs='+',
        type=int,
        default=[1, 2],
        help='process counts, the first the reference of the ratios '
        '(default: 1 2)')
    parser.add_argument(
        '--iters',
        type=int,
        default=30,
        help='timed iterations of a run, after the warm-up')
    parser.add_argument(
        '--warmup',
        type=int,
        default=5,
        help='iterations before the timed ones (the first of each input '
        'shape are slow)')
    parser.add_argument(
        '--rounds', type=int, default=3, help='interleaved rounds')
    quick = ' '.join(f'--{key} {value}' for key, value in QUICK.items())
    parser.add_argument(
        '--quick', action='store_true', help=f'a check that it runs: {quick}')
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    return args


def main():
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    results = run_scaling(args.work_dir, args.tasks, args.processes,
                          args.iters, args.warmup, args.rounds,
                          shlex.join(['python', *sys.argv]))
    print(write_report(results, args.work_dir))
    print(f'wrote scaling.md and scaling.json to {args.work_dir}')


if __name__ == '__main__':
    main()
