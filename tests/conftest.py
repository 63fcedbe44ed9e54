"""Fixtures shared by several test files."""
import os.path as osp
import warnings

import pytest
import torch
from helpers import REPO, calibrate

from edgeformer_mm.datasets.synthetic import make_tiny_shapes
from edgeformer_mm.utils import build_model


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    """A small tiny-shapes classification set: 4 classes, 4 training and 2
    validation images each, 32x32."""
    return make_tiny_shapes(
        str(tmp_path_factory.mktemp('data') / 'tiny_shapes'),
        num_train_per_class=4,
        num_val_per_class=2,
        image_size=32)


@pytest.fixture(scope='session')
def calibrated_checkpoint(tmp_path_factory):
    """A function from a model config (a path, absolute or from the
    repository's root) to a checkpoint of that model with calibrated random
    weights (see ``helpers.calibrate``), made once for the whole session."""
    root = tmp_path_factory.mktemp('calibrated')
    made = {}

    def checkpoint(config):
        config = osp.normpath(osp.join(REPO, config))
        if config not in made:
            torch.manual_seed(0)  # the same weights whatever ran before
            model = calibrate(build_model(config))
            name = osp.splitext(osp.basename(config))[0]
            made[config] = str(root / f'{name}.pth')
            torch.save(
                dict(meta=dict(), state_dict=model.state_dict()), made[config])
        return made[config]

    return checkpoint


# The tiny configs of the three tasks and their network input sizes.
TINY_MODELS = {
    'classification':
    ('configs/mmpretrain/edgeformer/edgeformer-xs_1xb32_tiny-shapes.py', 64),
    'detection': ('configs/mmdet/ssdlite_edgeformer_xs_tiny-coco.py', 128),
    'segmentation': ('configs/mmseg/deeplabv3_edgeformer_xs_tiny-voc.py', 128),
}


@pytest.fixture(scope='session')
def tiny_bundles(tmp_path_factory, calibrated_checkpoint):
    """A function from (task, backend) to the bundle directory of the tiny
    model of that task (calibrated random weights) for that backend,
    written by tools/deploy.py with the static deploy config of its size,
    once for the whole session (with mmdeploy's SDK files for ONNX
    Runtime); and the model config and checkpoint it was made from."""
    from helpers import run_main, write_photo
    root = tmp_path_factory.mktemp('bundles')
    photo = write_photo('coffee', root / 'coffee.png')
    made = {}

    def bundle(task, backend):
        if (task, backend) not in made:
            config, size = TINY_MODELS[task]
            model_cfg = osp.join(REPO, config)
            deploy_cfg = osp.join(REPO, 'configs', 'mmdeploy',
                                  f'{task}_{backend}_static-{size}x{size}.py')
            checkpoint = calibrated_checkpoint(model_cfg)
            work_dir = str(root / f'{task}_{backend}')
            run_main('tools/deploy.py', model_cfg, checkpoint, deploy_cfg,
                     photo, '--work-dir', work_dir,
                     *(['--dump-info'] if backend == 'onnxruntime' else []))
            made[task, backend] = (work_dir, model_cfg, checkpoint)
        return made[task, backend]

    return bundle


@pytest.fixture(scope='session')
def tiny_classifier_onnx(tmp_path_factory, calibrated_checkpoint):
    """The tiny classifier (calibrated random weights) in deploy mode,
    exported to ONNX at opset 11 as mmdeploy does; its input preprocessing
    steps."""
    from mmengine.config import Config

    from edgeformer_mm.deployment import ExportGraph, preprocess_steps
    classifier, size = TINY_MODELS['classification']
    cfg = Config.fromfile(osp.join(REPO, classifier))
    model = build_model(cfg)
    model.load_state_dict(
        torch.load(calibrated_checkpoint(classifier))['state_dict'])
    model.eval()
    model.backbone.switch_to_deploy((size, size))
    path = str(tmp_path_factory.mktemp('int8_onnx') / 'fp32.onnx')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(
            ExportGraph(model, 'Classification').eval(),
            torch.zeros(1, 3, size, size),
            path,
            input_names=['input'],
            output_names=['output'],
            opset_version=11,
            dynamo=False)
    return path, preprocess_steps(cfg)
