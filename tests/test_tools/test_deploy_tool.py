"""tools/deploy.py on the deploy configs in configs/mmdeploy (the
multi-size parity checks are in test_deployment/test_parity.py), and its
errors on bad input. One conversion runs it as a user does, as a command;
the others call its main() in this process, which saves the start of an
interpreter with the OpenMMLab stack each."""
import os
import os.path as osp
import re
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from mmengine.config import Config
from helpers import REPO, run_main, run_script, write_photo

import edgeformer_mm.deployment.ncnn
from edgeformer_mm.deployment import ConverterNotFoundError, convert_to_ncnn
from edgeformer_mm.utils import build_model

pytest.importorskip('skimage', reason='scikit-image is not installed')

CONFIGS = osp.join(REPO, 'configs')
MODEL_CFGS = {
    'classification': 'mmpretrain/edgeformer/edgeformer-s_8xb128_in1k.py',
    'detection': 'mmdet/ssdlite_edgeformer_s_coco.py',
    'segmentation': 'mmseg/deeplabv3_edgeformer_s_voc12aug-512x512.py',
}
TINY_CFG = osp.join(CONFIGS,
                    'mmpretrain/edgeformer/edgeformer-xs_1xb32_tiny-shapes.py')


@pytest.fixture(scope='module')
def photo(tmp_path_factory):
    return write_photo('coffee', tmp_path_factory.mktemp('photo') / 'c.jpg')


def deploy_args(calibrated_checkpoint, photo, deploy_cfg, work_dir):
    """The arguments of tools/deploy.py for the calibrated EdgeFormer-S
    model of the deploy config's task."""
    model_cfg = osp.join(CONFIGS, MODEL_CFGS[deploy_cfg.split('_')[0]])
    return (model_cfg, calibrated_checkpoint(model_cfg),
            osp.join(CONFIGS, 'mmdeploy', deploy_cfg), photo, '--work-dir',
            work_dir)


def deployed(calibrated_checkpoint, photo, deploy_cfg, work_dir, capsys):
    """Call tools/deploy.py's main(), check it passed its comparison (it
    exits with 1 if not); its stdout."""
    run_main('tools/deploy.py',
             *deploy_args(calibrated_checkpoint, photo, deploy_cfg, work_dir))
    stdout = capsys.readouterr().out
    assert re.search(r'vs PyTorch on .*c\.jpg: ', stdout)
    return stdout


def onnx_graph(work_dir):
    return onnx.load(osp.join(work_dir, 'end2end.onnx'))


def input_dims(graph):
    return graph.graph.input[0].type.tensor_type.shape.dim


def op_types(graph):
    return {node.op_type for node in graph.graph.node}


@pytest.mark.slow
def test_classification_static_export_is_baked(calibrated_checkpoint, photo,
                                               tmp_path):
    # As a user runs it: a command.
    result = run_script(
        'tools/deploy.py',
        *deploy_args(calibrated_checkpoint, photo,
                     'classification_onnxruntime_static-256x256.py',
                     tmp_path))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[
        -3000:]
    assert re.search(r'vs PyTorch on .*c\.jpg: ', result.stdout)
    graph = onnx_graph(tmp_path)
    assert [d.dim_value for d in input_dims(graph)] == [1, 3, 256, 256]
    # Deploy mode: no kernel resizing, circulant matrices built or norms
    # left; the GCCs are products with constant matrices.
    assert not {'Resize', 'Range', 'Mod', 'BatchNormalization'
                } & op_types(graph)
    assert 'MatMul' in op_types(graph)


@pytest.mark.slow
def test_classification_dynamic_export_runs_at_any_size(
        calibrated_checkpoint, photo, tmp_path, capsys):
    deployed(calibrated_checkpoint, photo,
             'classification_onnxruntime_dynamic.py', tmp_path, capsys)
    graph = onnx_graph(tmp_path)
    dims = [d.dim_param for d in input_dims(graph)]
    assert dims == ['batch', '', 'height', 'width']
    # Kernels resized and circulant matrices built inside the graph.
    assert {'Resize', 'Range', 'Mod', 'MatMul'} <= op_types(graph)
    session = onnxruntime.InferenceSession(
        str(tmp_path / 'end2end.onnx'), providers=['CPUExecutionProvider'])
    model_cfg = osp.join(CONFIGS, MODEL_CFGS['classification'])
    model = build_model(Config.fromfile(model_cfg))
    model.load_state_dict(
        torch.load(calibrated_checkpoint(model_cfg))['state_dict'])
    model.eval()
    for size in [(224, 288), (256, 256), (320, 224), (193, 257)]:
        x = torch.rand(2, 3, *size)
        with torch.no_grad():
            expected = torch.softmax(model(x), dim=1).numpy()
        actual = session.run(None, {'input': x.numpy()})[0]
        relative = np.abs(actual - expected).max() / np.abs(expected).max()
        assert relative <= 1e-4, (size, relative)


@pytest.mark.slow
def test_detection_static_ends_with_nms(calibrated_checkpoint, photo,
                                        tmp_path, capsys):
    stdout = deployed(calibrated_checkpoint, photo,
                      'detection_onnxruntime_static-320x320.py', tmp_path,
                      capsys)
    assert ', 0 unmatched;' in stdout
    graph = onnx_graph(tmp_path)
    assert [output.name for output in graph.graph.output] == ['dets', 'labels']
    assert 'NonMaxSuppression' in op_types(graph)
    assert not {'Resize', 'Range', 'Mod'} & op_types(graph)


@pytest.mark.slow
def test_segmentation_static_ends_with_logits(calibrated_checkpoint, photo,
                                              tmp_path, capsys):
    stdout = deployed(calibrated_checkpoint, photo,
                      'segmentation_onnxruntime_static-512x512.py', tmp_path,
                      capsys)
    assert re.search(r'same class on (100|99\.9\d\d)', stdout), stdout
    output = onnx_graph(tmp_path).graph.output[0].type.tensor_type.shape
    assert [d.dim_value for d in output.dim] == [1, 21, 512, 512]


@pytest.mark.slow
@pytest.mark.parametrize('deploy_cfg', [
    'classification_ncnn_static-256x256.py',
    'detection_ncnn_static-320x320.py', 'segmentation_ncnn_static-512x512.py'
])
def test_ncnn(calibrated_checkpoint, photo, tmp_path, capsys, deploy_cfg):
    stdout = deployed(calibrated_checkpoint, photo, deploy_cfg, tmp_path,
                      capsys)
    assert 'ncnn vs PyTorch' in stdout
    assert sorted(os.listdir(tmp_path)) == [
        'bundle.json', 'end2end.bin', 'end2end.param'
    ]
    with open(tmp_path / 'end2end.param') as f:
        layers = f.read().splitlines()[2:]
    assert layers[0].split()[:2] == ['Input', 'input']
    assert not any(line.startswith('ArgMax') for line in layers)


def write_deploy_cfg(tmp_path, backend):
    path = tmp_path / 'deploy_cfg.py'
    base = osp.join(CONFIGS, 'mmdeploy',
                    'classification_onnxruntime_static-256x256.py')
    path.write_text(f'_base_ = [{base!r}]\n'
                    f'backend_config = dict(type={backend!r})\n')
    return str(path)


def test_refuses_an_unsupported_backend(calibrated_checkpoint, photo,
                                        tmp_path):
    with pytest.raises(SystemExit) as error:
        run_main('tools/deploy.py', TINY_CFG, calibrated_checkpoint(TINY_CFG),
                 write_deploy_cfg(tmp_path, 'tensorrt'), photo, '--work-dir',
                 tmp_path / 'out')
    message = str(error.value)
    assert 'is for the tensorrt backend' in message
    assert 'supports onnxruntime, ncnn, mnn, litert, executorch' in message


def test_refuses_a_checkpoint_of_another_model(photo, tmp_path):
    xs = build_model(
        Config.fromfile(
            osp.join(CONFIGS, 'mmpretrain', 'edgeformer',
                     'edgeformer-xs_8xb128_in1k.py')))
    checkpoint = tmp_path / 'xs.pth'
    torch.save(dict(state_dict=xs.state_dict()), checkpoint)
    with pytest.raises(SystemExit) as error:
        run_main(
            'tools/deploy.py',
            osp.join(CONFIGS, MODEL_CFGS['classification']), checkpoint,
            osp.join(CONFIGS, 'mmdeploy',
                     'classification_onnxruntime_static-256x256.py'), photo,
            '--work-dir', tmp_path / 'out')
    message = str(error.value)
    assert 'does not match the model config' in message
    assert re.search(r'[1-9]\d* weights of another shape', message)
    assert re.search(r'shape \(.*\) for backbone\.', message)
    assert not osp.exists(tmp_path / 'out')


@pytest.mark.parametrize('checkpoint', ['empty', 'directory'])
def test_refuses_a_checkpoint_that_is_no_file_of_weights(
        checkpoint, photo, tmp_path):
    path = tmp_path / 'epoch_1.pth'
    if checkpoint == 'empty':
        path.write_bytes(b'')
        problem = 'is empty'
    else:
        path.mkdir()
        problem = 'is a directory, not a checkpoint file'
    with pytest.raises(SystemExit) as error:
        run_main(
            'tools/deploy.py', TINY_CFG, path,
            osp.join(CONFIGS, 'mmdeploy',
                     'classification_onnxruntime_static-256x256.py'), photo,
            '--work-dir', tmp_path / 'out')
    assert str(error.value) == f'error: {path} {problem}'
    assert not osp.exists(tmp_path / 'out')


def test_refuses_an_unreadable_image(calibrated_checkpoint, tmp_path):
    image = tmp_path / 'broken.jpg'
    image.write_text('not an image')
    with pytest.raises(SystemExit) as error:
        run_main(
            'tools/deploy.py', TINY_CFG, calibrated_checkpoint(TINY_CFG),
            osp.join(CONFIGS, 'mmdeploy',
                     'classification_onnxruntime_static-256x256.py'), image,
            '--work-dir', tmp_path / 'out')
    assert f'cannot read the image {image}' in str(error.value)


@pytest.fixture
def tiny_classifier():
    model = build_model(Config.fromfile(TINY_CFG))
    model.eval()
    model.backbone.switch_to_deploy((64, 64))
    return model


def test_missing_converter_is_named(tiny_classifier, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'pnnx', None)  # not installed
    monkeypatch.setenv('PATH', str(tmp_path / 'empty'))
    with pytest.raises(ConverterNotFoundError, match='pip install pnnx'):
        convert_to_ncnn(tiny_classifier, 'Classification', (64, 64),
                        str(tmp_path / 'end2end'))


def test_failed_conversion_leaves_no_model(tiny_classifier, tmp_path,
                                           monkeypatch):
    # A converter that dies half-way through writing its output.
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'pnnx').write_text('#!/bin/sh\n'
                                  'echo 7767517 > model.ncnn.param\n'
                                  'echo out of memory >&2\nexit 1\n')
    (bin_dir / 'pnnx').chmod(0o755)
    monkeypatch.setattr(edgeformer_mm.deployment.ncnn, 'pnnx_executable',
                        lambda: str(bin_dir / 'pnnx'))
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    # A model from an earlier conversion must not survive either.
    (out_dir / 'end2end.param').write_text('earlier')
    with pytest.raises(RuntimeError, match='out of memory'):
        convert_to_ncnn(tiny_classifier, 'Classification', (64, 64),
                        str(out_dir / 'end2end'))
    assert os.listdir(out_dir) == []


def test_dump_info_is_refused_before_converting(calibrated_checkpoint, photo,
                                                tmp_path):
    """mmdeploy's SDK reads detections from `dets` and `labels`: the ncnn
    detector, which ends in `detections`, is refused with --dump-info."""
    work_dir = tmp_path / 'ssd_ncnn'
    with pytest.raises(SystemExit, match="--dump-info: .*'dets'"):
        run_main(
            'tools/deploy.py',
            *deploy_args(calibrated_checkpoint, photo,
                         'detection_ncnn_static-320x320.py', work_dir),
            '--dump-info')
    assert not osp.exists(work_dir)
