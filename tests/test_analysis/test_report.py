"""The benchmark's report and timing harness on synthetic figures (no model
is built or timed)."""
import json

import cv2
import pytest

from edgeformer_mm.analysis import markdown_report, write_report
from edgeformer_mm.analysis.benchmark import (Case, parse_size, size_name,
                                              time_cases)

BACKENDS = ['pytorch', 'pytorch-deploy', 'onnxruntime']


def figures(latency_ms, spread=0.1):
    return dict(latency_ms=latency_ms, spread=spread)


def model_info(params, macs_256, macs_512):
    return dict(
        params=params,
        macs={
            '256x256': macs_256,
            '512x512': macs_512
        },
        peak_memory_mb=20.4)


@pytest.fixture
def results():
    """EdgeFormer-S and both references, a ParC / plain pair, one failed
    conversion; 256x256 in the table, a sweep to 512x512."""
    latency = {
        'EdgeFormer-S|pytorch|256x256|1': figures(100.),
        'EdgeFormer-S|pytorch-deploy|256x256|1': figures(80.),
        'EdgeFormer-S|onnxruntime|256x256|1': figures(40., 0.05),
        'EdgeFormer-S|onnxruntime|512x512|1': figures(160.),
        'MobileViT-S|pytorch|256x256|1': figures(125.),
        'MobileViT-S|onnxruntime|256x256|1': figures(50.),
        'MobileViT-S|onnxruntime|512x512|1': figures(300.),
        'EdgeNeXt-S|pytorch|256x256|1': figures(80.),
        'EdgeNeXt-S|onnxruntime|256x256|1': figures(40.),
        'MobileNetV2|pytorch|256x256|1': figures(20.),
        'ParC-MobileNetV2|pytorch|256x256|1': figures(30.),
        'ParC-MobileNetV2|pytorch-deploy|256x256|1': figures(25.),
    }
    return dict(
        machine='a test CPU, 2 cores',
        settings=dict(
            rounds=3, runs=5, threads=[1], sizes=['256'], sweep=['256',
                                                                 '512']),
        models={
            'EdgeFormer-S': model_info(5_040_000, 1_657e6, 6_628e6),
            'MobileViT-S': model_info(5_580_000, 1_823e6, 7_292e6),
            'EdgeNeXt-S': model_info(5_590_000, 1_253e6, 5_012e6),
            'MobileNetV2': model_info(3_500_000, 400e6, 1_600e6),
            'ParC-MobileNetV2': model_info(3_528_000, 420e6, 1_680e6),
        },
        latency=latency,
        failures={'EdgeNeXt-S|ncnn|256x256': 'RuntimeError: pnnx failed'})


def test_table_rows_and_ratios(results):
    report = markdown_report(results, BACKENDS)
    assert 'Machine: a test CPU, 2 cores.' in report
    assert 'median over 3 interleaved rounds of the median of 5 runs' in (
        report)
    assert ('| model | params | MACs | peak MB | pytorch 1T ms (spread) | '
            'pytorch-deploy 1T ms (spread) | onnxruntime 1T ms (spread) |'
            ) in report
    assert ('| EdgeFormer-S | 5.04 M | 1657 M | 20 | 100.0 (10%) | '
            '80.0 (10%) | 40.0 (5%) |') in report
    # No deploy mode: a dash.
    assert '| MobileViT-S | 5.58 M | 1823 M | 20 | 125.0 (10%) | - |' in (
        report)
    # Deploy mode is compared with the references' eager PyTorch.
    assert ('- pytorch-deploy, 1 thread(s): MobileViT-S 0.64, '
            'EdgeNeXt-S 1.00') in report
    assert '- onnxruntime, 1 thread(s): MobileViT-S 0.80, EdgeNeXt-S 1.00' \
        in report
    assert '- deploy mode / eager EdgeFormer-S, 1 thread: 0.80' in report
    assert ('| ParC-MobileNetV2 / MobileNetV2 | 1.008 | 1.050 | 1.50 | '
            '1.25 | - |') in report


def test_sweep_and_failures(results):
    report = markdown_report(results, BACKENDS)
    sweep = report[report.index('## Resolution sweep (1 thread)'):]
    assert '| model | 256x256 | 512x512 |' in sweep
    assert '| EdgeFormer-S | 40.0 | 160.0 |' in sweep
    assert '| EdgeNeXt-S | 40.0 | - |' in sweep
    assert ('Latency growth from 256x256 to 512x512 (ONNX Runtime, 1 '
            'thread): EdgeFormer-S 4.00x, MobileViT-S 6.00x') in sweep
    assert report.endswith('## Failures\n\n'
                           '- EdgeNeXt-S|ncnn|256x256: RuntimeError: pnnx '
                           'failed\n')


def test_without_edgeformer_or_pairs_those_ratios_are_left_out(results):
    for name in ('EdgeFormer-S', 'MobileNetV2'):
        del results['models'][name]
    report = markdown_report(results, BACKENDS)
    assert 'EdgeFormer-S latency / reference' not in report
    assert 'ParC / plain' not in report


def test_write_report_writes_every_file(results, tmp_path):
    report = write_report(results, BACKENDS, str(tmp_path))
    assert (tmp_path / 'benchmark.md').read_text() == report
    # results.json holds all a report is drawn from.
    saved = json.loads((tmp_path / 'results.json').read_text())
    assert saved == results
    assert markdown_report(saved, BACKENDS) == report
    for plot in ('latency_vs_macs.png', 'latency_vs_resolution.png'):
        assert cv2.imread(str(tmp_path / plot)) is not None


def test_sizes_are_named_height_by_width():
    assert parse_size('256') == (256, 256)
    assert parse_size('256x512') == (256, 512)
    assert size_name(parse_size('320')) == '320x320'


def test_cases_are_warmed_up_and_timed_in_interleaved_rounds():
    calls = []

    def run(name):
        return lambda: calls.append(name)

    cases = [Case(name, 'pytorch', (64, 64), 1, run(name)) for name in 'AB']
    latencies = time_cases(cases, rounds=3, runs=2)
    # Two warm-up runs each, then the rounds alternate between the cases.
    assert calls == ['A'] * 2 + ['B'] * 2 + (['A'] * 2 + ['B'] * 2) * 3
    assert set(latencies) == {('A', 'pytorch', '64x64', 1),
                              ('B', 'pytorch', '64x64', 1)}
    for value in latencies.values():
        assert value['latency_ms'] > 0 and value['spread'] >= 0
