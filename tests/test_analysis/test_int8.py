"""The int8 comparisons: the agreement figures on hand-made outputs, and
tools/analysis/int8_accuracy.py's classifier part on a small setting (its
figures are measurements, not checked here beyond being figures)."""
import numpy as np
import pytest
from helpers import run_script

from edgeformer_mm.analysis.int8 import output_agreement

pytest.importorskip('onnxruntime', reason='ONNX Runtime is not installed')
pytest.importorskip('ncnn', reason='the ncnn runtime is not installed')
pytest.importorskip('skimage', reason='scikit-image is not installed')


def test_output_agreement():
    expected = np.array([[1., 0., 0.], [0., 2., 1.]])
    same = output_agreement(expected, expected)
    assert same == dict(top1=1., cosine=pytest.approx(1.), relative_error=0.)
    # The second row's best class swapped, the first row scaled.
    actual = np.array([[2., 0., 0.], [0., 1., 2.]])
    figures = output_agreement(expected, actual)
    assert figures['top1'] == 0.5
    assert figures['cosine'] == pytest.approx((1 + 4 / 5) / 2)
    assert figures['relative_error'] == pytest.approx(
        (1 + np.sqrt(2 / 5)) / 2)


@pytest.mark.slow
def test_int8_accuracy_tool_compares_classifiers(tmp_path):
    result = run_script('tools/analysis/int8_accuracy.py', '--work-dir',
                        tmp_path, '--demo-dir', tmp_path / 'no_demo',
                        '--models', 'EdgeFormer-XS', '--size', '64',
                        '--normalizations', 'unit')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'the tiny sets are skipped' in result.stdout
    report = (tmp_path / 'int8_accuracy.md').read_text()
    rows = [
        line for line in report.splitlines() if '| EdgeFormer-XS |' in line
    ]
    assert [row.split(' | ')[2] for row in rows] == ['onnxruntime', 'ncnn']
    for row in rows:
        top1, cosine, _, share = row.strip(' |').split(' | ')[3:]
        assert 0 <= float(top1) <= 1 and -1 <= float(cosine) <= 1
        assert 90 < float(share.rstrip('%')) <= 100
