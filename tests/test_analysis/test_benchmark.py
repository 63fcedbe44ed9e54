"""tools/analysis/benchmark.py on a tiny setting: it runs every backend and
writes its table, results and plots, int8 rows included (the figures
themselves are not checked: timings belong to the benchmark, not to
tests)."""
import json

import cv2
import pytest
from helpers import run_script

pytest.importorskip('onnxruntime', reason='ONNX Runtime is not installed')
pytest.importorskip('ncnn', reason='the ncnn runtime is not installed')
pytest.importorskip('pnnx', reason='the pnnx converter is not installed')


@pytest.mark.slow
def test_benchmark_runs_on_a_tiny_setting(tmp_path):
    result = run_script('tools/analysis/benchmark.py', '--work-dir', tmp_path,
                        '--models', 'EdgeFormer-XS', 'MobileViT-XS', '--sizes',
                        '64', '--sweep', '64', '128', '--threads', '1',
                        '--rounds', '2', '--runs', '1')
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / 'results.json').read_text())
    assert not results['failures']
    expected = {
        f'{model}|{backend}|64x64|1'
        for model in ('EdgeFormer-XS', 'MobileViT-XS')
        for backend in ('pytorch', 'onnxruntime', 'ncnn', 'onnxruntime-int8',
                        'ncnn-int8')
    } | {'EdgeFormer-XS|pytorch-deploy|64x64|1'} | {
        f'{model}|{backend}|128x128|1'
        for model in ('EdgeFormer-XS', 'MobileViT-XS')
        for backend in ('pytorch', 'onnxruntime')
    }
    assert set(results['latency']) == expected
    assert all(figures['latency_ms'] > 0
               for figures in results['latency'].values())
    xs = results['models']['EdgeFormer-XS']
    assert xs['params'] == 2_185_384
    assert xs['peak_memory_mb'] > 0
    table = (tmp_path / 'benchmark.md').read_text()
    assert '| EdgeFormer-XS | 2.19 M |' in table
    assert 'Resolution sweep' in table
    for plot in ('latency_vs_macs.png', 'latency_vs_resolution.png'):
        assert cv2.imread(str(tmp_path / plot)) is not None


@pytest.mark.slow
def test_benchmark_compares_parc_models_with_their_plain_counterparts(
        tmp_path):
    result = run_script('tools/analysis/benchmark.py', '--work-dir', tmp_path,
                        '--models', 'MobileNetV2', 'ParC-MobileNetV2',
                        '--sizes', '64', '--sweep', '--threads', '1',
                        '--rounds', '2', '--runs', '1', '--backends',
                        'pytorch', 'pytorch-deploy', 'onnxruntime', 'ncnn')
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / 'results.json').read_text())
    assert not results['failures']
    # The ParC model runs in deploy mode too; the plain one has none.
    assert set(results['latency']) == {
        f'{model}|{backend}|64x64|1'
        for model in ('MobileNetV2', 'ParC-MobileNetV2')
        for backend in ('pytorch', 'onnxruntime', 'ncnn')
    } | {'ParC-MobileNetV2|pytorch-deploy|64x64|1'}
    assert results['models']['ParC-MobileNetV2']['params'] == 3_532_136
    table = (tmp_path / 'benchmark.md').read_text()
    assert '| ParC-MobileNetV2 / MobileNetV2 | 1.008 |' in table
    assert 'EdgeFormer-S latency / reference' not in table


@pytest.mark.slow
def test_benchmark_times_the_other_runtimes(tmp_path):
    """MNN (fp32 and its own int8), OpenVINO and ExecuTorch rows, with each
    runtime's conversion time and its difference from ONNX Runtime."""
    for module in ('MNN', 'openvino', 'executorch'):
        pytest.importorskip(module, reason=f'{module} is not installed')
    backends = ('onnxruntime', 'mnn', 'mnn-int8', 'openvino', 'executorch')
    result = run_script('tools/analysis/benchmark.py', '--work-dir', tmp_path,
                        '--models', 'EdgeFormer-XS', '--sizes', '64',
                        '--sweep', '--threads', '1', '--rounds', '1', '--runs',
                        '1', '--backends', *backends)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / 'results.json').read_text())
    assert not results['failures']
    assert set(results['latency']) == {
        f'EdgeFormer-XS|{backend}|64x64|1'
        for backend in backends
    }
    conversions = results['conversions']
    assert set(conversions) == {
        f'EdgeFormer-XS|{backend}|64x64'
        for backend in backends
    }
    for backend in ('mnn', 'openvino', 'executorch'):
        # Class scores of a random model: all close to 1/1000.
        assert conversions[f'EdgeFormer-XS|{backend}|64x64'][
            'max_diff'] < 1e-6, backend
    assert 'max_diff' not in conversions['EdgeFormer-XS|mnn-int8|64x64']
    assert '## Conversion' in (tmp_path / 'benchmark.md').read_text()
