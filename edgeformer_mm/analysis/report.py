"""The benchmark's report: a markdown table, results.json and two plots.

Everything is drawn from the results of
:func:`edgeformer_mm.analysis.run_benchmark` (the models in their order,
the settings, the figures) and the backends that were asked for, so a
report can be rewritten from a results.json.
"""
import json
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np
# A bare Figure draws to files without pyplot's global state or a display.
from matplotlib.figure import Figure

from .benchmark import PARC_PAIRS, parse_size, size_name

# The EdgeFormer comparison: EdgeFormer-S against each reference.
SUBJECT = 'EdgeFormer-S'
REFERENCES = ('MobileViT-S', 'EdgeNeXt-S')


def latency(results: dict, name: str, backend: str, size: str,
            threads: int) -> Optional[float]:
    """The latency in ms of a case (``size`` as ``'HxW'``), None if it was
    not timed."""
    figures = results['latency'].get(f'{name}|{backend}|{size}|{threads}')
    return figures['latency_ms'] if figures else None


def same_backend_other(backend: str) -> str:
    """The backend to compare a model that has deploy mode with one that
    does not: eager PyTorch for PyTorch in deploy mode."""
    return 'pytorch' if backend == 'pytorch-deploy' else backend


def _row(cells: Sequence[str]) -> str:
    return '| ' + ' | '.join(cells) + ' |'


def _table_head(header: Sequence[str]) -> List[str]:
    return [_row(header), '|' + '---|' * len(header)]


def markdown_report(results: dict, backends: Sequence[str]) -> str:
    """benchmark.md: per table size, every model's figures on every backend
    and thread count, with the EdgeFormer and ParC / plain ratios where
    their models are there; the resolution sweep; the failures.

    Args:
        results (dict): The results of :func:`run_benchmark`.
        backends (Sequence[str]): The backends asked for, in column order.

    Returns:
        str: The markdown.
    """
    settings = results['settings']
    models = list(results['models'])
    sizes = [parse_size(s) for s in settings['sizes']]
    sweep = [parse_size(s) for s in settings['sweep']]
    lines = [
        '# Benchmark', '', f'Machine: {results["machine"]}.', '',
        f'Batch 1, random weights; latency = median over '
        f'{settings["rounds"]} interleaved rounds of the median of '
        f'{settings["runs"]} runs (spread: '
        '(max - min) / median of the round medians). MACs: convolutions, '
        'linear layers and matrix products (edgeformer_mm count_macs). '
        'Peak memory: the most memory PyTorch held for activations and '
        'temporaries during one eager inference at '
        f'{size_name(sizes[0])}. ncnn in fp32; EdgeFormer and the ParC '
        'ConvNets baked (deploy mode) for ONNX Runtime and ncnn. *-int8: '
        'post-training int8 (percentile calibration on scikit-image photos; '
        'weights per channel, activations per tensor).', ''
    ]
    columns = [(b, t) for b in backends for t in settings['threads']]
    for size in map(size_name, sizes):
        header = ['model', 'params', 'MACs', 'peak MB']
        header += [f'{b} {t}T ms (spread)' for b, t in columns]
        lines += [f'## {size}', ''] + _table_head(header)
        for name in models:
            model = results['models'][name]
            row = [
                name, f'{model["params"] / 1e6:.2f} M',
                f'{model["macs"][size] / 1e6:.0f} M',
                f'{model["peak_memory_mb"]:.0f}'
            ]
            for backend, threads in columns:
                figures = results['latency'].get(
                    f'{name}|{backend}|{size}|{threads}')
                row.append(
                    f'{figures["latency_ms"]:.1f} '
                    f'({100 * figures["spread"]:.0f}%)' if figures else '-')
            lines.append(_row(row))
        lines.append('')
        if SUBJECT in models:
            lines += edgeformer_ratios(results, size, columns)
        lines += parc_ratios(results, size, columns)
    if sweep:
        lines += sweep_tables(results, backends, sweep)
    lines += conversion_table(results, backends)
    if results['failures']:
        lines += ['## Failures', '']
        lines += [
            f'- {key}: {error}' for key, error in results['failures'].items()
        ]
        lines.append('')
    return '\n'.join(lines)


def conversion_table(results: dict, backends: Sequence[str]) -> List[str]:
    """Per model and size, each runtime's conversion time (with loading)
    and its largest class score difference from ONNX Runtime's."""
    conversions = results.get('conversions') or {}
    runtimes = [
        b for b in backends if any(
            key.split('|')[1] == b for key in conversions)
    ]
    if not runtimes:
        return []
    lines = [
        '## Conversion', '',
        'Seconds to convert and load (an ONNX-based runtime\'s first '
        'conversion includes the ONNX export); in brackets the largest class '
        'score difference from ONNX Runtime on the same random input '
        '(fp32 runtimes).', ''
    ] + _table_head(['model', 'size'] + runtimes)
    keys = dict.fromkeys(tuple(key.split('|')[::2])
                         for key in conversions)  # (model, size)
    for name, size in keys:
        row = [name, size]
        for backend in runtimes:
            figures = conversions.get(f'{name}|{backend}|{size}')
            if not figures:
                row.append('-')
                continue
            cell = f'{figures["seconds"]:.1f} s'
            if 'max_diff' in figures:
                cell += f' ({figures["max_diff"]:.1e})'
            row.append(cell)
        lines.append(_row(row))
    return lines + ['']


def edgeformer_ratios(results: dict, size: str, columns: list) -> List[str]:
    """EdgeFormer-S's latency over each reference's, per (backend, threads)
    column, and its deploy mode over its eager latency."""
    lines = ['**Ratios** (EdgeFormer-S latency / reference):', '']
    for backend, threads in columns:
        subject = latency(results, SUBJECT, backend, size, threads)
        ratios = [
            f'{reference} {subject / other:.2f}' for reference in REFERENCES
            for other in [
                latency(results, reference, same_backend_other(backend), size,
                        threads)
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
    # int8 against fp32: EdgeFormer-S's own, and the references'.
    for backend, threads in columns:
        if not backend.endswith('-int8'):
            continue
        fp32 = backend[:-len('-int8')]
        subject = latency(results, SUBJECT, backend, size, threads)
        ratios = [
            f'{name} fp32 {subject / other:.2f}'
            for name in (SUBJECT, ) + REFERENCES
            for other in [latency(results, name, fp32, size, threads)]
            if subject and other
        ]
        if ratios:
            lines.append(f'- EdgeFormer-S {backend} / fp32 {fp32}, {threads} '
                         'thread(s): ' + ', '.join(ratios))
    return lines + ['']


def parc_ratios(results: dict, size: str, columns: list) -> List[str]:
    """ParC / plain counterpart: parameters, MACs and latency per column,
    for the pairs whose both models are there."""
    info = results['models']
    pairs = [(parc, plain) for parc, plain in PARC_PAIRS.items()
             if parc in info and plain in info]
    if not pairs:
        return []
    header = ['ParC / plain', 'params', 'MACs'
              ] + [f'{b} {t}T' for b, t in columns]
    lines = [
        '**ParC / plain counterpart** (ratios; PyTorch in deploy mode is '
        'compared with the plain model in eager PyTorch):', ''
    ] + _table_head(header)
    for parc, plain in pairs:
        row = [
            f'{parc} / {plain}',
            f'{info[parc]["params"] / info[plain]["params"]:.3f}',
            f'{info[parc]["macs"][size] / info[plain]["macs"][size]:.3f}'
        ]
        for backend, threads in columns:
            ours = latency(results, parc, backend, size, threads)
            theirs = latency(results, plain, same_backend_other(backend), size,
                             threads)
            row.append(f'{ours / theirs:.2f}' if ours and theirs else '-')
        lines.append(_row(row))
    return lines + ['']


def sweep_tables(results: dict, backends: Sequence[str],
                 sweep: list) -> List[str]:
    """Every model's 1-thread latency at each sweep size, for eager PyTorch
    and ONNX Runtime; the 256 -> 512 growth of EdgeFormer-S and the
    references."""
    lines = ['## Resolution sweep (1 thread)', '']
    for backend in ('pytorch', 'onnxruntime'):
        if backend not in backends:
            continue
        header = ['model'] + [size_name(s) for s in sweep]
        lines += [f'{backend}, ms:', ''] + _table_head(header)
        for name in results['models']:
            row = [name] + [
                f'{value:.1f}' if value else '-'
                for value in (latency(results, name, backend, size_name(s), 1)
                              for s in sweep)
            ]
            lines.append(_row(row))
        lines.append('')
    growth = {}
    for name in (SUBJECT, *REFERENCES):
        low, high = (
            latency(results, name, 'onnxruntime', s, 1)
            for s in ('256x256', '512x512'))
        if low and high:
            growth[name] = high / low
    if growth:
        lines.append('Latency growth from 256x256 to 512x512 (ONNX '
                     'Runtime, 1 thread): ' +
                     ', '.join(f'{name} {value:.2f}x'
                               for name, value in growth.items()))
        lines.append('')
    return lines


def plot_latency_vs_macs(results: dict, backends: Sequence[str], path: str):
    """Latency against MACs of every model at the first table size and
    thread count, one series per backend."""
    settings = results['settings']
    size = size_name(parse_size(settings['sizes'][0]))
    threads = settings['threads'][0]
    figure = Figure(figsize=(6, 4.5))
    axis = figure.subplots()
    for backend in backends:
        points = [(info['macs'][size] / 1e6,
                   latency(results, name, backend, size, threads), name)
                  for name, info in results['models'].items()]
        points = [p for p in points if p[1]]
        if not points:
            continue
        axis.scatter([p[0] for p in points], [p[1] for p in points],
                     label=backend)
        for macs, ms, name in points:
            axis.annotate(name, (macs, ms), fontsize=6)
    axis.set(
        xlabel='MMACs',
        ylabel='latency (ms)',
        title=f'{size}, batch 1, {threads} thread(s)')
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def plot_latency_vs_resolution(results: dict, backends: Sequence[str],
                               path: str):
    """1-thread latency against input pixels at the square sweep sizes, one
    line per model, in ONNX Runtime (eager PyTorch without it)."""
    sweep = [parse_size(s) for s in results['settings']['sweep']]
    square = [s for s in sweep if s[0] == s[1]]
    backend = 'onnxruntime' if 'onnxruntime' in backends else 'pytorch'
    figure = Figure(figsize=(6, 4.5))
    axis = figure.subplots()
    for name in results['models']:
        points = [(s[0] * s[1], latency(results, name, backend, size_name(s),
                                        1)) for s in square]
        points = [p for p in points if p[1]]
        if points:
            axis.plot(*np.array(points).T, marker='o', label=name)
    axis.set(
        xlabel='input pixels',
        ylabel='latency (ms)',
        title=f'{backend}, batch 1, 1 thread')
    if square:
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def write_report(results: dict, backends: Sequence[str], work_dir: str) -> str:
    """Write results.json, benchmark.md, latency_vs_macs.png and
    latency_vs_resolution.png to ``work_dir`` (which must exist).

    Args:
        results (dict): The results of :func:`run_benchmark`.
        backends (Sequence[str]): The backends asked for, in column order.
        work_dir (str): Where the files go.

    Returns:
        str: The markdown of benchmark.md.
    """
    with open(osp.join(work_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    report = markdown_report(results, backends)
    with open(osp.join(work_dir, 'benchmark.md'), 'w') as f:
        f.write(report)
    plot_latency_vs_macs(results, backends,
                         osp.join(work_dir, 'latency_vs_macs.png'))
    plot_latency_vs_resolution(results, backends,
                               osp.join(work_dir, 'latency_vs_resolution.png'))
    return report
