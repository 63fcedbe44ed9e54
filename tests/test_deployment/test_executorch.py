"""ExecuTorch (XNNPACK) programs of the tiny models of the three tasks
(calibrated random weights, EdgeFormer in deploy mode) against the same
graph in PyTorch, within ONNX Runtime's parity tolerances; and the lowered
EdgeFormer is one XNNPACK delegate."""
import collections
import os.path as osp

import pytest
import torch
from conftest import TINY_MODELS
from helpers import REPO, calibrate

from edgeformer_mm.deployment import ExportGraph
from edgeformer_mm.deployment.bundle import TASK_NAMES
from edgeformer_mm.deployment.executorch import (export_executorch,
                                                 lower_to_xnnpack)
from edgeformer_mm.utils import build_model
from edgeformer_runtime.bundle import OUTPUTS

pytest.importorskip(
    'executorch',
    reason='ExecuTorch is not installed (pip install '
    'edgeformer_mm[executorch])')

TASKS = {
    'classification': 'Classification',
    'detection': 'ObjectDetection',
    'segmentation': 'Segmentation',
}


@pytest.fixture(scope='module', params=list(TASKS))
def lowered(request):
    """(task, the deploy-mode model, its input size, its lowered
    program)."""
    config, size = TINY_MODELS[request.param]
    torch.manual_seed(0)
    model = calibrate(build_model(osp.join(REPO, config)))
    model.backbone.switch_to_deploy((size, size))
    task = TASKS[request.param]
    return task, model, size, lower_to_xnnpack(model, task, (size, size))


@pytest.mark.slow
def test_program_matches_pytorch(lowered, tmp_path):
    from executorch.runtime import Runtime
    task, model, size, _ = lowered
    path = str(tmp_path / 'end2end.pte')
    assert export_executorch(model, task, (size, size), path) == [path]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith('.')]
    method = Runtime.get().load_program(path).load_method('forward')
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected = ExportGraph(model, task, host_nms=True).eval()(x)
    expected = expected if isinstance(expected, tuple) else (expected, )
    outputs = method.execute([x])
    names = OUTPUTS[TASK_NAMES[task], 'executorch']
    assert len(outputs) == len(names)
    for name, out, ref in zip(names, outputs, expected):
        assert out.shape == ref.shape, name
        difference = (out - ref).abs().max().item()
        if name == 'boxes':  # input pixels
            assert difference <= 1e-2
        elif name == 'scores':
            assert difference <= 1e-4
        else:
            assert difference / ref.abs().max().item() <= 1e-4


@pytest.mark.slow
def test_edgeformer_is_one_xnnpack_delegate(lowered):
    """The whole network runs in XNNPACK: the GCC blocks' products (no
    expanded copies) and detection's decoding included."""
    _, _, _, program = lowered
    graph = program.exported_program().graph
    ops = collections.Counter(
        str(node.target) for node in graph.nodes if node.op == 'call_function')
    assert ops['executorch_call_delegate'] == 1
    # Outside: only copies of 0-d constants, their buffers and the
    # delegate's outputs.
    assert set(ops) <= {
        'executorch_call_delegate', 'dim_order_ops._to_dim_order_copy.out',
        '<built-in function getitem>'
    } | {op
         for op in ops if op.startswith('<function alloc')}


def test_failed_export_writes_nothing(tmp_path):
    path = tmp_path / 'end2end.pte'
    path.write_bytes(b'an earlier model')
    model = build_model(osp.join(REPO,
                                 TINY_MODELS['classification'][0])).eval()
    with pytest.raises(ValueError, match='task must be one of'):
        export_executorch(model, 'Pose', (64, 64), str(path))
    assert list(tmp_path.iterdir()) == []
