"""ONNX Runtime, ncnn and MNN against PyTorch for EdgeFormer-S
classification, SSDLite detection and DeepLabV3 segmentation, on real photos
at three input sizes each (non-square ones included), with calibrated random
weights."""
import copy
import os.path as osp

import pytest
from mmengine.config import Config
from helpers import REPO, write_photo

from edgeformer_mm.deployment import (MnnRunner, NcnnRunner,
                                      OnnxRuntimeBackend, convert_onnx_to_mnn,
                                      convert_to_ncnn, export_onnx,
                                      task_parity)

pytest.importorskip('onnxruntime', reason='ONNX Runtime is not installed')
pytest.importorskip('ncnn', reason='the ncnn runtime is not installed')
pytest.importorskip(
    'skimage', reason='scikit-image (the test photos) is not installed')
pytest.importorskip('pnnx', reason='the pnnx converter is not installed')

CONFIGS = osp.join(REPO, 'configs')
PHOTOS = ('astronaut', 'coffee', 'chelsea')
# model config, ONNX Runtime dynamic deploy config, (height, width) sizes
CASES = {
    'Classification': ('mmpretrain/edgeformer/edgeformer-s_8xb128_in1k.py',
                       'classification_onnxruntime_dynamic.py', [(256, 256),
                                                                 (224, 288),
                                                                 (320, 224)]),
    'ObjectDetection': ('mmdet/ssdlite_edgeformer_s_coco.py',
                        'detection_onnxruntime_dynamic.py', [(320, 320),
                                                             (256, 384),
                                                             (352, 288)]),
    'Segmentation': ('mmseg/deeplabv3_edgeformer_s_voc12aug-512x512.py',
                     'segmentation_onnxruntime_dynamic.py', [(256, 256),
                                                             (256, 384),
                                                             (320, 256)]),
}


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp('photos')
    return [write_photo(name, root / f'{name}.jpg') for name in PHOTOS]


@pytest.fixture(scope='module', params=list(CASES))
def case(request, calibrated_checkpoint):
    """(task, model config, checkpoint, mmdeploy processor, PyTorch model,
    sizes) for a calibrated model."""
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import load_config

    task = request.param
    model_file, deploy_file, sizes = CASES[task]
    model_cfg = Config.fromfile(osp.join(CONFIGS, model_file))
    checkpoint = calibrated_checkpoint(osp.join(CONFIGS, model_file))
    deploy_cfg, model_cfg = load_config(
        osp.join(CONFIGS, 'mmdeploy', deploy_file), model_cfg)
    processor = build_task_processor(model_cfg, deploy_cfg, 'cpu')
    torch_model = processor.build_pytorch_model(checkpoint)
    return task, model_cfg, deploy_cfg, checkpoint, processor, torch_model, \
        sizes


def create_input(processor, task, photo, height, width):
    """The photo resized to (height, width), as the model's test step takes
    it."""
    if task == 'Classification':
        # mmdeploy's classification input keeps the config's centre crop.
        processor.model_cfg.test_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(width, height)),
            dict(type='PackInputs')
        ]
    inputs, _ = processor.create_input(photo, [width, height])
    assert inputs['inputs'][0].shape[1:] == (height, width)
    return inputs


def assert_within_tolerances(task, parity, where):
    if task == 'ObjectDetection':
        assert parity['expected'] > 0, where
        assert parity['unmatched'] == 0, (where, parity)
        # At the network input; 0.01 px is tools/deploy.py's tolerance in
        # image pixels, which are larger here.
        assert parity['box'] <= 1e-2, (where, parity)
        assert parity['score'] <= 1e-4, (where, parity)
    else:
        assert parity['rel'] <= 1e-4, (where, parity)
    if task == 'Segmentation':
        assert parity['agreement'] >= 0.999, (where, parity)


@pytest.mark.slow
def test_onnxruntime_dynamic_matches_pytorch(case, photos, tmp_path):
    task, model_cfg, deploy_cfg, checkpoint, processor, torch_model, \
        sizes = case
    onnx_file = export_onnx(photos[0], str(tmp_path), deploy_cfg, model_cfg,
                            checkpoint)
    backend = OnnxRuntimeBackend(processor, [onnx_file])
    for photo, (height, width) in zip(photos, sizes):
        inputs = create_input(processor, task, photo, height, width)
        assert_within_tolerances(
            task, task_parity(task, torch_model, backend, inputs),
            (photo, height, width))


@pytest.mark.slow
def test_mnn_dynamic_matches_pytorch(case, photos, tmp_path):
    """MNN runs the dynamic ONNX graph at each size, within ONNX Runtime's
    tolerances."""
    pytest.importorskip('MNN', reason='MNN is not installed')
    task, model_cfg, deploy_cfg, checkpoint, processor, torch_model, \
        sizes = case
    onnx_file = export_onnx(photos[0], str(tmp_path), deploy_cfg, model_cfg,
                            checkpoint)
    runner = MnnRunner(
        processor, onnx_file,
        convert_onnx_to_mnn(onnx_file, str(tmp_path / 'end2end.mnn')))
    for photo, (height, width) in zip(photos, sizes):
        inputs = create_input(processor, task, photo, height, width)
        assert_within_tolerances(
            task, task_parity(task, torch_model, runner, inputs),
            (photo, height, width))


@pytest.mark.slow
def test_ncnn_static_matches_pytorch(case, photos, tmp_path):
    task, _, _, _, processor, torch_model, sizes = case
    for photo, (height, width) in zip(photos, sizes):
        deployed = copy.deepcopy(torch_model)
        deployed.backbone.switch_to_deploy((height, width))
        files = convert_to_ncnn(deployed, task, (height, width),
                                str(tmp_path / f'{height}x{width}'))
        runner = NcnnRunner(torch_model, task, *files)
        inputs = create_input(processor, task, photo, height, width)
        assert_within_tolerances(
            task, task_parity(task, torch_model, runner, inputs),
            (photo, height, width))
