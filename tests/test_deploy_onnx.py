"""tools/deploy.py with mmdeploy and ONNX Runtime: EdgeFormer-S
classification, static (deploy mode) and dynamic shapes, against PyTorch."""
import os.path as osp
import re

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from mmpretrain import get_model
from tiny_runs import run_script

import edgeformer_mm  # noqa: F401  (registers the models)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODEL_CFG = osp.join(REPO, 'configs', 'mmpretrain', 'edgeformer',
                     'edgeformer-s_8xb128_in1k.py')
DEPLOY_CFGS = osp.join(REPO, 'configs', 'mmdeploy')


@pytest.fixture(scope='module')
def calibrated(tmp_path_factory):
    """(checkpoint, image, model): EdgeFormer-S with BN statistics from a
    few training batches and a spread-out classifier, so that its outputs
    depend on the input."""
    root = tmp_path_factory.mktemp('deploy')
    torch.manual_seed(0)
    model = get_model(MODEL_CFG)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model.backbone(torch.rand(4, 3, 96, 128))
        model.head.fc.weight.mul_(4)
    checkpoint = str(root / 'edgeformer-s.pth')
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), checkpoint)
    rng = np.random.default_rng(0)
    image = str(root / 'image.png')
    cv2.imwrite(
        image,
        cv2.resize((rng.random((8, 8, 3)) * 255).astype(np.uint8),
                   (300, 280),
                   interpolation=cv2.INTER_CUBIC))
    return checkpoint, image, model.eval()


def deploy(calibrated, deploy_cfg, work_dir):
    checkpoint, image, _ = calibrated
    result = run_script('tools/deploy.py', MODEL_CFG, checkpoint,
                        osp.join(DEPLOY_CFGS, deploy_cfg), image,
                        '--work-dir', work_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    relative = re.search(r'onnxruntime vs PyTorch .* relative (\S+) ',
                         result.stdout)
    assert relative and float(relative.group(1)) <= 1e-4, result.stdout
    return onnx.load(osp.join(work_dir, 'end2end.onnx'))


def input_dims(graph):
    return graph.graph.input[0].type.tensor_type.shape.dim


def op_types(graph):
    return {node.op_type for node in graph.graph.node}


def test_static_export_is_baked(calibrated, tmp_path):
    graph = deploy(calibrated, 'classification_onnxruntime_static-256x256.py',
                   tmp_path)
    dims = [d.dim_value for d in input_dims(graph)]
    assert dims == [1, 3, 256, 256]
    # Deploy mode: plain convolutions, no kernel resizing, no branch norms.
    assert not {'Resize', 'MatMul'} & op_types(graph)


def test_dynamic_export_runs_at_any_size(calibrated, tmp_path):
    graph = deploy(calibrated, 'classification_onnxruntime_dynamic.py',
                   tmp_path)
    dims = [d.dim_param for d in input_dims(graph)]
    assert dims == ['batch', '', 'height', 'width']
    assert {'Resize', 'MatMul'} <= op_types(graph)
    session = onnxruntime.InferenceSession(
        str(tmp_path / 'end2end.onnx'), providers=['CPUExecutionProvider'])
    model = calibrated[2]
    for size in [(224, 288), (256, 256), (320, 224), (193, 257)]:
        x = torch.rand(2, 3, *size)
        with torch.no_grad():
            expected = torch.softmax(model(x), dim=1).numpy()
        actual = session.run(None, {'input': x.numpy()})[0]
        relative = np.abs(actual - expected).max() / np.abs(expected).max()
        assert relative <= 1e-4, (size, relative)
