"""Speed of EdgeFormer next to MobileViT and EdgeNeXt (mmpretrain's own),
and of the ParC ConvNets next to their plain counterparts.

Classification models with random weights, batch 1, on this machine's CPU:
parameters, MACs (edgeformer_mm.utils.count_macs for every model: convs,
linear layers and matrix products, halved FLOPs), peak memory of one eager
inference, and latency in eager PyTorch (EdgeFormer and the ParC ConvNets
also in deploy mode), ONNX Runtime and ncnn (fp32, and int8 after
post-training quantization calibrated on scikit-image photos; EdgeFormer
and the ParC ConvNets baked for the input size), at each thread count. All
cases run interleaved in rounds inside this one process, so that drift
hits them alike; a latency is the median over rounds of each round's
median, the spread is (max - min) / median of the round medians.

A resolution sweep times every model at several input sizes (eager PyTorch
and ONNX Runtime, 1 thread). Writes benchmark.md, results.json and the
plots latency_vs_macs.png and latency_vs_resolution.png to --work-dir.

By default the EdgeFormer comparison runs; ``--models`` picks any of the
models, e.g. the ParC ConvNets and their plain counterparts, which the table
then compares pair by pair (ParC / plain). The cases, the timing and the
report are edgeformer_mm.analysis's.

Examples:
    python tools/analysis/benchmark.py --work-dir work_dirs/benchmark
    python tools/analysis/benchmark.py --work-dir work_dirs/benchmark_parc \\
        --models MobileNetV2 ParC-MobileNetV2 ResNet-50 ParC-ResNet-50 \\
        ConvNeXt-XT ParC-ConvNeXt-XT --sizes 224 --sweep
"""
import argparse
import os

from edgeformer_mm.analysis import (BENCHMARK_BACKENDS, BENCHMARK_MODELS,
                                    EDGEFORMER_COMPARISON, OTHER_BACKENDS,
                                    run_benchmark, write_report)


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/benchmark')
    parser.add_argument(
        '--models',
        nargs='+',
        default=list(EDGEFORMER_COMPARISON),
        choices=list(BENCHMARK_MODELS),
        help='default: the EdgeFormer comparison (' +
        ' '.join(EDGEFORMER_COMPARISON) + ')')
    parser.add_argument(
        '--backends',
        nargs='+',
        default=list(BENCHMARK_BACKENDS),
        choices=BENCHMARK_BACKENDS + OTHER_BACKENDS,
        help='default: ' + ' '.join(BENCHMARK_BACKENDS) + '; also: ' +
        ' '.join(OTHER_BACKENDS) + ' (litert in .venv-litert, see '
        'tools/setup_litert.sh)')
    parser.add_argument(
        '--sizes',
        nargs='+',
        default=['256', '224'],
        help='input sizes of the main table, H or HxW (default: 256 224)')
    parser.add_argument(
        '--sweep',
        nargs='*',
        default=['224', '256', '320', '384', '448', '512', '256x512'],
        help='input sizes of the resolution sweep (none: no sweep)')
    parser.add_argument('--threads', nargs='+', type=int, default=[1, 2])
    parser.add_argument(
        '--rounds', type=int, default=5, help='interleaved rounds')
    parser.add_argument(
        '--runs', type=int, default=5, help='timed runs per case and round')
    return parser.parse_args()


def main():
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    results = run_benchmark(args.models, args.backends, args.sizes, args.sweep,
                            args.threads, args.rounds, args.runs)
    print(write_report(results, args.backends, args.work_dir))
    print(f'wrote benchmark.md, results.json, latency_vs_macs.png and '
          f'latency_vs_resolution.png to {args.work_dir}')


if __name__ == '__main__':
    main()
