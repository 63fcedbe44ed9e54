"""Speed of EdgeFormer next to MobileViT and EdgeNeXt (mmpretrain's own),
and of the ParC ConvNets next to their plain counterparts.

Classification models with random weights, batch 1, on this machine's CPU:
parameters, MACs (edgeformer_mm.utils.count_macs for every model: convs,
linear layers and matrix products, halved FLOPs), peak memory of one eager
inference, and latency in eager PyTorch (EdgeFormer and the ParC ConvNets
also in deploy mode), ONNX Runtime and ncnn (fp32; EdgeFormer and the ParC
ConvNets baked for the input size), at each thread count. All cases run
interleaved in rounds inside this one process, so that drift hits them
alike; a latency is the median over rounds of each round's median, the
spread is (max - min) / median of the round medians.

A resolution sweep times every model at several input sizes (eager PyTorch
and ONNX Runtime, 1 thread). Writes benchmark.md, results.json and the
plots latency_vs_macs.png and latency_vs_resolution.png to --work-dir.

By default the EdgeFormer comparison runs; ``--models`` picks any of the
models, e.g. the ParC ConvNets and their plain counterparts, which the table
then compares pair by pair (ParC / plain).

Examples:
    python tools/analysis/benchmark.py --work-dir work_dirs/benchmark
    python tools/analysis/benchmark.py --work-dir work_dirs/benchmark_parc \
        --models MobileNetV2 ParC-MobileNetV2 ResNet-50 ParC-ResNet-50 \
        ConvNeXt-XT ParC-ConvNeXt-XT --sizes 224 --sweep
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import tempfile
import time
import types
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from mmpretrain import get_model

import edgeformer_mm  # noqa: F401  (registers the models)
from edgeformer_mm.deployment import NcnnGraph, NcnnRunner, convert_to_ncnn
from edgeformer_mm.utils import count_macs, count_parameters

MODELS = {
    'EdgeFormer-XS': 'edgeformer-xs_8xb128_in1k',
    'EdgeFormer-S': 'edgeformer-s_8xb128_in1k',
    'EdgeFormer-H': 'edgeformer-h_8xb128_in1k',
    'MobileViT-XS': 'mobilevit-xsmall_3rdparty_in1k',
    'MobileViT-S': 'mobilevit-small_3rdparty_in1k',
    'EdgeNeXt-XXS': 'edgenext-xxsmall_3rdparty_in1k',
    'EdgeNeXt-XS': 'edgenext-xsmall_3rdparty_in1k',
    'EdgeNeXt-S': 'edgenext-small_3rdparty_in1k',
    'MobileNetV2': 'mobilenet-v2_32xb128-convnext-recipe_in1k',
    'ParC-MobileNetV2': 'parc-mobilenet-v2_32xb128_in1k',
    'ResNet-50': 'resnet50_32xb128-convnext-recipe_in1k',
    'ParC-ResNet-50': 'parc-resnet50_32xb128_in1k',
    'ConvNeXt-XT': 'convnext-xt_32xb128_in1k',
    'ParC-ConvNeXt-XT': 'parc-convnext-xt_32xb128_in1k',
}
EDGEFORMER_COMPARISON = list(MODELS)[:8]
# ParC ConvNet -> its plain counterpart.
PARC_PAIRS = {
    'ParC-MobileNetV2': 'MobileNetV2',
    'ParC-ResNet-50': 'ResNet-50',
    'ParC-ConvNeXt-XT': 'ConvNeXt-XT',
}
BACKENDS = ('pytorch', 'pytorch-deploy', 'onnxruntime', 'ncnn')
REFERENCES = ('MobileViT-S', 'EdgeNeXt-S')
SUBJECT = 'EdgeFormer-S'


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/benchmark')
    parser.add_argument(
        '--models',
        nargs='+',
        default=EDGEFORMER_COMPARISON,
        choices=list(MODELS),
        help='default: the EdgeFormer comparison (the first 8)')
    parser.add_argument(
        '--backends', nargs='+', default=list(BACKENDS), choices=BACKENDS)
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


def parse_size(text: str):
    height, _, width = text.partition('x')
    return int(height), int(width or height)


def size_name(size) -> str:
    return f'{size[0]}x{size[1]}'


def build(name: str):
    return get_model(MODELS[name]).eval()


def has_deploy_mode(model) -> bool:
    """EdgeFormer and the ParC ConvNets bake their GCCs for an input size."""
    return hasattr(model.backbone, 'switch_to_deploy')


def four_dimensional_attention(model):
    """A copy of ``model`` whose mmpretrain attention layers split q, k and
    v without a 5-D tensor, which ncnn cannot hold (pnnx leaves such
    reshapes unconverted). The results are the same."""
    from mmpretrain.models.utils.attention import (ChannelMultiheadAttention,
                                                   MultiheadAttention)

    def heads(module, x):
        """q, k, v of shape (B, heads, N, head_dims)."""
        batch, tokens, _ = x.shape
        return [
            part.reshape(batch, tokens, module.num_heads,
                         module.head_dims).transpose(1, 2)
            for part in module.qkv(x).chunk(3, dim=-1)
        ]

    def tokens(module, x, batch, length):
        x = module.proj(x.reshape(batch, length, module.embed_dims))
        return module.proj_drop(x)

    def attention(module, x):  # MultiheadAttention.forward, eval mode
        q, k, v = heads(module, x)
        x = module.scaled_dot_product_attention(q, k, v).transpose(1, 2)
        return module.gamma1(tokens(module, x, *x.shape[:2]))

    def channel_attention(module, x):  # ChannelMultiheadAttention.forward
        q, k, v = (part.transpose(-2, -1) for part in heads(module, x))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        weights = ((q @ k.transpose(-2, -1)) * module.scale).softmax(dim=-1)
        x = (weights @ v).permute(0, 3, 1, 2)
        return tokens(module, x, *x.shape[:2])

    model = copy.deepcopy(model)
    for module in model.modules():
        if getattr(module, 'v_shortcut', False):
            raise NotImplementedError('v_shortcut attention')
        if isinstance(module, ChannelMultiheadAttention):
            module.forward = types.MethodType(channel_attention, module)
        elif isinstance(module, MultiheadAttention):
            module.forward = types.MethodType(attention, module)
    return model


def deployed(model, size):
    """EdgeFormer and ParC models baked for ``size``; others as they are."""
    if not has_deploy_mode(model):
        return model
    model = copy.deepcopy(model)
    model.backbone.switch_to_deploy(size)
    return model


class Case:
    """One thing to time: a model on a backend at a size and thread count.
    """

    def __init__(self, model_name, backend, size, threads, run):
        self.key = (model_name, backend, size_name(size), threads)
        self.threads = threads
        self.run = run
        self.round_medians = []

    def time_round(self, runs: int):
        torch.set_num_threads(self.threads)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self.run()
            times.append(time.perf_counter() - start)
        self.round_medians.append(statistics.median(times))

    def figures(self):
        medians = self.round_medians
        latency = statistics.median(medians)
        return dict(
            latency_ms=1000 * latency,
            spread=(max(medians) - min(medians)) / latency)


def make_cases(name, model, backends, size, threads_list, tmp_dir):
    """The cases of one model at one size; conversions happen here."""
    x = torch.rand(1, 3, *size)
    cases, failures = [], {}
    for backend in backends:
        if backend == 'pytorch-deploy' and not has_deploy_mode(model):
            continue
        try:
            runners = backend_runners(name, model, backend, size, x,
                                      threads_list, tmp_dir)
        except Exception as error:  # report, keep benchmarking the rest
            failures[backend] = f'{type(error).__name__}: {error}'[:300]
            continue
        for threads, run in zip(threads_list, runners):
            cases.append(Case(name, backend, size, threads, run))
    return cases, failures


def backend_runners(name, model, backend, size, x, threads_list, tmp_dir):
    """One callable per thread count that runs ``model`` once on ``x``."""
    if backend in ('pytorch', 'pytorch-deploy'):
        net = model if backend == 'pytorch' else deployed(model, size)

        def run():
            with torch.no_grad():
                net(x)

        return [run] * len(threads_list)
    prefix = osp.join(tmp_dir, f'{name}_{size_name(size)}')
    if backend == 'onnxruntime':
        import onnxruntime
        path = prefix + '.onnx'
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.onnx.export(
                NcnnGraph(deployed(model, size), 'Classification').eval(),
                x,
                path,
                input_names=['input'],
                output_names=['output'],
                opset_version=17,  # MobileViT's attention needs >= 14
                dynamo=False)
        runners = []
        for threads in threads_list:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            session = onnxruntime.InferenceSession(
                path, options, providers=['CPUExecutionProvider'])
            feed = {'input': x.numpy()}
            runners.append(
                lambda session=session: session.run(None, feed))
        return runners
    files = convert_to_ncnn(
        four_dimensional_attention(deployed(model, size)), 'Classification',
        size, prefix)
    return [
        lambda runner=NcnnRunner(
            model, 'Classification', *files, num_threads=threads):
        runner(x) for threads in threads_list
    ]


def peak_memory_mb(model, size) -> float:
    """Peak of the memory PyTorch allocates during one eager inference
    (activations and temporaries; the weights are already there), from the
    profiler's allocation events."""
    from torch.profiler import ProfilerActivity, profile
    x = torch.rand(1, 3, *size)
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as profiler:
        with torch.no_grad():
            model(x)
    # Each op's own allocations (+) and frees (-), in the order they ran.
    events = sorted(
        profiler.events(), key=lambda event: event.time_range.start)
    usage = np.cumsum([event.self_cpu_memory_usage for event in events])
    return float(usage.max(initial=0)) / 2**20


def time_cases(cases, rounds, runs):
    for case in cases:  # warm-up
        torch.set_num_threads(case.threads)
        for _ in range(2):
            case.run()
    for _ in range(rounds):
        for case in cases:
            case.time_round(runs)
    return {case.key: case.figures() for case in cases}


def main():
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    sizes = [parse_size(s) for s in args.sizes]
    sweep = [parse_size(s) for s in args.sweep]
    models = {name: build(name) for name in args.models}
    info, cases, failures = {}, [], {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        for name, model in models.items():
            info[name] = dict(
                params=count_parameters(model),
                macs={
                    size_name(size): count_macs(model,
                                                torch.rand(1, 3, *size))
                    for size in dict.fromkeys(sizes + sweep)
                },
                peak_memory_mb=peak_memory_mb(model, sizes[0]))
            for size in sizes:
                new, failed = make_cases(name, model, args.backends, size,
                                         args.threads, tmp_dir)
                cases += new
                failures.update({(name, b, size_name(size)): error
                                 for b, error in failed.items()})
            for size in sweep:
                if size in sizes:
                    continue
                sweep_backends = [
                    b for b in ('pytorch', 'onnxruntime') if b in args.backends
                ]
                new, failed = make_cases(name, model, sweep_backends, size,
                                         [1], tmp_dir)
                cases += new
                failures.update({(name, b, size_name(size)): error
                                 for b, error in failed.items()})
        print(f'timing {len(cases)} cases: {args.rounds} interleaved rounds '
              f'of {args.runs} runs each')
        latencies = time_cases(cases, args.rounds, args.runs)
    results = dict(
        machine=machine(),
        settings=dict(
            rounds=args.rounds,
            runs=args.runs,
            threads=args.threads,
            sizes=args.sizes,
            sweep=args.sweep),
        models=info,
        latency={'|'.join(map(str, key)): value
                 for key, value in latencies.items()},
        failures={'|'.join(key): error for key, error in failures.items()})
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    report = markdown(results, args, sizes, sweep)
    with open(osp.join(args.work_dir, 'benchmark.md'), 'w') as f:
        f.write(report)
    print(report)
    plot(results, args, sizes, sweep)
    print(f'wrote benchmark.md, results.json, latency_vs_macs.png and '
          f'latency_vs_resolution.png to {args.work_dir}')


def machine() -> str:
    import platform
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f
                       if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return (f'{cpu}, {os.cpu_count()} cores; torch {torch.__version__}, '
            f'onnxruntime {_version("onnxruntime")}, ncnn {_version("ncnn")}')


def _version(package: str) -> str:
    try:
        return __import__(package).__version__
    except (ImportError, AttributeError):
        return 'absent'


def latency(results, name, backend, size, threads):
    figures = results['latency'].get(f'{name}|{backend}|{size}|{threads}')
    return figures['latency_ms'] if figures else None


def markdown(results, args, sizes, sweep) -> str:
    lines = [
        '# Benchmark', '', f'Machine: {results["machine"]}.', '',
        f'Batch 1, random weights; latency = median over {args.rounds} '
        f'interleaved rounds of the median of {args.runs} runs (spread: '
        '(max - min) / median of the round medians). MACs: convolutions, '
        'linear layers and matrix products (edgeformer_mm count_macs). '
        'Peak memory: the most memory PyTorch held for activations and '
        'temporaries during one eager inference at '
        f'{size_name(sizes[0])}. ncnn in fp32; EdgeFormer and the ParC '
        'ConvNets baked (deploy mode) for ONNX Runtime and ncnn.', ''
    ]
    for size in map(size_name, sizes):
        header = ['model', 'params', 'MACs', 'peak MB']
        columns = [(b, t) for b in args.backends for t in args.threads]
        header += [f'{b} {t}T ms (spread)' for b, t in columns]
        lines += [f'## {size}', '', '| ' + ' | '.join(header) + ' |',
                  '|' + '---|' * len(header)]
        for name in args.models:
            model = results['models'][name]
            row = [
                name, f'{model["params"] / 1e6:.2f} M',
                f'{model["macs"][size] / 1e6:.0f} M',
                f'{model["peak_memory_mb"]:.0f}'
            ]
            for backend, threads in columns:
                figures = results['latency'].get(
                    f'{name}|{backend}|{size}|{threads}')
                row.append(f'{figures["latency_ms"]:.1f} '
                           f'({100 * figures["spread"]:.0f}%)'
                           if figures else '-')
            lines.append('| ' + ' | '.join(row) + ' |')
        lines.append('')
        if SUBJECT in args.models:
            lines += edgeformer_ratios(results, size, columns)
        lines += parc_ratios(results, args, size, columns)
    if sweep:
        lines += ['## Resolution sweep (1 thread)', '']
        for backend in ('pytorch', 'onnxruntime'):
            if backend not in args.backends:
                continue
            header = ['model'] + [size_name(s) for s in sweep]
            lines += [f'{backend}, ms:', '', '| ' + ' | '.join(header) + ' |',
                      '|' + '---|' * len(header)]
            for name in args.models:
                row = [name] + [
                    f'{value:.1f}' if value else '-' for value in (
                        latency(results, name, backend, size_name(s), 1)
                        for s in sweep)
                ]
                lines.append('| ' + ' | '.join(row) + ' |')
            lines.append('')
        growth = {}
        for name in (SUBJECT, *REFERENCES):
            low, high = (latency(results, name, 'onnxruntime', s, 1)
                         for s in ('256x256', '512x512'))
            if low and high:
                growth[name] = high / low
        if growth:
            lines.append('Latency growth from 256x256 to 512x512 (ONNX '
                         'Runtime, 1 thread): ' + ', '.join(
                             f'{name} {value:.2f}x'
                             for name, value in growth.items()))
            lines.append('')
    if results['failures']:
        lines += ['## Failures', '']
        lines += [f'- {key}: {error}'
                  for key, error in results['failures'].items()]
        lines.append('')
    return '\n'.join(lines)


def same_backend_other(backend: str) -> str:
    """The backend to compare a model that has deploy mode with one that
    does not: eager PyTorch for PyTorch in deploy mode."""
    return 'pytorch' if backend == 'pytorch-deploy' else backend


def edgeformer_ratios(results, size, columns) -> list:
    lines = ['**Ratios** (EdgeFormer-S latency / reference):', '']
    for backend, threads in columns:
        subject = latency(results, SUBJECT, backend, size, threads)
        ratios = [
            f'{reference} {subject / other:.2f}'
            for reference in REFERENCES for other in [
                latency(results, reference, same_backend_other(backend),
                        size, threads)
            ] if subject and other
        ]
        if ratios:
            lines.append(f'- {backend}, {threads} thread(s): ' +
                         ', '.join(ratios))
    eager = latency(results, SUBJECT, 'pytorch', size, 1)
    baked = latency(results, SUBJECT, 'pytorch-deploy', size, 1)
    if eager and baked:
        lines.append(f'- deploy mode / eager EdgeFormer-S, 1 thread: '
                     f'{baked / eager:.2f}')
    return lines + ['']


def parc_ratios(results, args, size, columns) -> list:
    """ParC / plain counterpart: parameters, MACs and latency per column."""
    pairs = [(parc, plain) for parc, plain in PARC_PAIRS.items()
             if parc in args.models and plain in args.models]
    if not pairs:
        return []
    header = ['ParC / plain', 'params', 'MACs'
              ] + [f'{b} {t}T' for b, t in columns]
    lines = [
        '**ParC / plain counterpart** (ratios; PyTorch in deploy mode is '
        'compared with the plain model in eager PyTorch):', '',
        '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)
    ]
    for parc, plain in pairs:
        info = results['models']
        row = [
            f'{parc} / {plain}',
            f'{info[parc]["params"] / info[plain]["params"]:.3f}',
            f'{info[parc]["macs"][size] / info[plain]["macs"][size]:.3f}'
        ]
        for backend, threads in columns:
            ours = latency(results, parc, backend, size, threads)
            theirs = latency(results, plain, same_backend_other(backend),
                             size, threads)
            row.append(f'{ours / theirs:.2f}' if ours and theirs else '-')
        lines.append('| ' + ' | '.join(row) + ' |')
    return lines + ['']


def plot(results, args, sizes, sweep):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    size = size_name(sizes[0])
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for backend in args.backends:
        points = [(results['models'][name]['macs'][size] / 1e6,
                   latency(results, name, backend, size, args.threads[0]),
                   name) for name in args.models]
        points = [p for p in points if p[1]]
        if not points:
            continue
        axis.scatter([p[0] for p in points], [p[1] for p in points],
                     label=backend)
        for macs, ms, name in points:
            axis.annotate(name, (macs, ms), fontsize=6)
    axis.set(xlabel='MMACs', ylabel='latency (ms)',
             title=f'{size}, batch 1, {args.threads[0]} thread(s)')
    axis.legend()
    figure.tight_layout()
    figure.savefig(osp.join(args.work_dir, 'latency_vs_macs.png'), dpi=120)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(6, 4.5))
    square = [s for s in sweep if s[0] == s[1]]
    backend = 'onnxruntime' if 'onnxruntime' in args.backends else 'pytorch'
    for name in args.models:
        points = [(s[0] * s[1], latency(results, name, backend, size_name(s),
                                        1)) for s in square]
        points = [p for p in points if p[1]]
        if points:
            axis.plot(*np.array(points).T, marker='o', label=name)
    axis.set(xlabel='input pixels', ylabel='latency (ms)',
             title=f'{backend}, batch 1, 1 thread')
    if square:
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(
        osp.join(args.work_dir, 'latency_vs_resolution.png'), dpi=120)
    plt.close(figure)


if __name__ == '__main__':
    main()
