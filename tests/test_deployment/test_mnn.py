"""MNN: the converter and the runtime install nothing and open no network
connection (``MNN.tools``, which does both, is never imported), refuse
broken models by name, and run bundles through edgeformer_runtime."""
import os.path as osp

import numpy as np
import pytest
import torch
from helpers import audited_run
from torch import nn

from edgeformer_mm.deployment import MnnConversionError, convert_onnx_to_mnn
from edgeformer_runtime.backends import MnnModule

pytest.importorskip('MNN', reason='MNN is not installed')


def installed_distributions() -> set:
    from importlib import metadata
    return {(d.metadata['Name'], d.version) for d in metadata.distributions()}


@pytest.fixture(scope='module')
def onnx_file(tmp_path_factory):
    """A small network with the operators of our graphs (convolutions, a
    batched matrix product, a resize, softmax)."""

    class Net(nn.Module):

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.circulant = nn.Parameter(torch.randn(8, 16, 16))

        def forward(self, x):
            y = torch.matmul(self.circulant, self.conv(x).relu())
            y = nn.functional.interpolate(y, scale_factor=0.5)
            return y.mean((2, 3)).softmax(1)

    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('mnn') / 'net.onnx')
    torch.onnx.export(
        Net().eval(),
        torch.rand(1, 3, 16, 16),
        path,
        input_names=['input'],
        output_names=['output'],
        opset_version=11,
        dynamo=False)
    return path


def test_convert_and_run_install_nothing_and_connect_nowhere(
        onnx_file, tmp_path):
    before = installed_distributions()
    report = audited_run(
        f'''
        path = edgeformer_mm.deployment.convert_onnx_to_mnn(
            {onnx_file!r}, {str(tmp_path / 'a.mnn')!r})
        module = edgeformer_runtime.backends.MnnModule(
            path, 'input', ['output'])
        print(module(np.ones((1, 3, 16, 16), np.float32))[0].shape)
        ''',
        tmp_path,
        setup='import numpy as np, edgeformer_mm.deployment, '
        'edgeformer_runtime.backends')
    assert report['events'] == []
    assert 'MNN.tools' not in report['imported']
    if report['traced']:
        assert report['connections'] == []
        assert report['programs'] == []
    assert installed_distributions() == before


def test_audit_sees_connections_and_programs(tmp_path):
    """The check above can fail: a connection attempt (to a closed port on
    loopback) and a program started are both reported."""
    report = audited_run(
        '''
        import socket, subprocess
        with socket.socket() as s:
            try:
                s.connect(('127.0.0.1', 9))
            except OSError:
                pass
        subprocess.run(['true'])
        ''', tmp_path)
    assert [event for event, _ in report['events']
            ] == ['socket.connect', 'subprocess.Popen']
    if report['traced']:
        assert len(report['connections']) == 1
        assert any('true' in call for call in report['programs'])


def test_converted_model_matches_onnx_runtime(onnx_file, tmp_path):
    import onnxruntime
    mnn_file = convert_onnx_to_mnn(onnx_file, str(tmp_path / 'net.mnn'))
    x = np.random.default_rng(0).random((1, 3, 16, 16), np.float32)
    expected = onnxruntime.InferenceSession(onnx_file).run(None,
                                                           {'input': x})[0]
    actual, = MnnModule(mnn_file, 'input', ['output'])(x)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_broken_onnx_file_is_refused_by_name(tmp_path):
    broken = tmp_path / 'broken.onnx'
    broken.write_bytes(b'not an onnx model')
    target = tmp_path / 'broken.mnn'
    with pytest.raises(MnnConversionError, match='broken.onnx'):
        convert_onnx_to_mnn(str(broken), str(target))
    assert not osp.exists(target)
    assert not osp.exists(str(target) + '.partial')
