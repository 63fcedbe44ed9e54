"""Bundles: the preprocessing they describe equals the OpenMMLab pipelines
exactly, and the torch-free runtime predicts as PyTorch's inference APIs do
from image files (scikit-image's photos at three sizes each), also in a
process where PyTorch and OpenMMLab cannot be imported."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import TINY_MODELS
from helpers import REPO, write_photo
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import init_default_scope

from edgeformer_mm.deployment import (compare_predictions,
                                      init_reference_model, preprocess_steps,
                                      reference_prediction)
from edgeformer_mm.utils import build_model
from edgeformer_runtime import Bundle, Predictor, preprocess

pytest.importorskip('skimage', reason='scikit-image is not installed')

PIPELINE_CONFIGS = [
    'mmpretrain/edgeformer/edgeformer-xs_1xb32_tiny-shapes.py',
    'mmpretrain/edgeformer/edgeformer-s_8xb128_in1k.py',
    'mmpretrain/parc_convnets/parc-resnet50_32xb128_in1k.py',
    'mmdet/ssdlite_edgeformer_xs_tiny-coco.py',
    'mmdet/ssdlite_edgeformer_s_coco.py',
    'mmseg/deeplabv3_edgeformer_xs_tiny-voc.py',
    'mmseg/deeplabv3_edgeformer_s_voc12aug-512x512.py',
]
# (height, width): odd sizes, both orientations, crops whose centring
# offset is an exact half (Python's rounding), and an elongated image.
IMAGE_SIZES = [(37, 53), (250, 130), (130, 250), (289, 290), (301, 288),
               (9, 700)]
# The extras where installed: ExecuTorch, and LiteRT (in .venv-litert).
BACKENDS = ('onnxruntime', 'ncnn', 'mnn') + tuple(
    backend for backend, module in [('executorch',
                                     'executorch'), ('litert', 'litert_torch')]
    if importlib.util.find_spec(module))
BUNDLES = [(task, backend) for task in TINY_MODELS for backend in BACKENDS]
# Blocked in the torch-free subprocess.
HEAVY_PACKAGES = ('torch', 'torchvision', 'mmcv', 'mmengine', 'mmpretrain',
                  'mmdet', 'mmseg', 'mmdeploy')


def pytorch_input(cfg: Config, model, path: str) -> torch.Tensor:
    """The network input of the model's own test pipeline and data
    preprocessor for the image file ``path``."""
    init_default_scope(cfg.default_scope)
    steps = [
        step for step in cfg.test_dataloader.dataset.pipeline
        if 'LoadAnnotations' not in step['type']
    ]
    data = Compose(steps)(dict(img_path=path))
    batch = dict(inputs=[data['inputs']], data_samples=[data['data_samples']])
    return model.data_preprocessor(batch, False)['inputs'][0]


@pytest.mark.parametrize('config', PIPELINE_CONFIGS)
def test_preprocessing_equals_the_pipeline(config, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    if cfg.get('data_preprocessor'):  # as mmpretrain's init_model does
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = build_model(cfg)
    steps = preprocess_steps(cfg)
    rng = np.random.default_rng(0)
    for height, width in IMAGE_SIZES:
        path = str(tmp_path / f'{height}x{width}.png')
        cv2.imwrite(path, rng.integers(0, 256, (height, width, 3), np.uint8))
        expected = pytorch_input(cfg, model, path)
        actual = torch.from_numpy(preprocess(path, steps).input)
        assert torch.equal(actual, expected), (config, height, width)


def test_unsupported_pipeline_steps_are_named():
    cfg = Config.fromfile(osp.join(REPO, 'configs', PIPELINE_CONFIGS[0]))
    cfg.test_dataloader.dataset.pipeline.insert(
        1, dict(type='RandomFlip', prob=0.5))
    with pytest.raises(ValueError, match='RandomFlip'):
        preprocess_steps(cfg)
    cfg.test_dataloader.dataset.pipeline[1] = dict(
        type='ResizeEdge', scale=72, backend='turbojpeg')
    with pytest.raises(ValueError, match='turbojpeg'):
        preprocess_steps(cfg)


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """scikit-image's photos, each at its size, halved and squeezed to a
    different aspect ratio; PNG and JPEG."""
    root = tmp_path_factory.mktemp('photos')
    paths = []
    for name, ext in [('astronaut', 'png'), ('coffee', 'jpg'),
                      ('chelsea', 'png')]:
        image = cv2.imread(write_photo(name, root / f'{name}.png'))
        height, width = image.shape[:2]
        for size in [(width, height), (width // 2, height // 2),
                     (width * 3 // 4, height * 2 // 5)]:
            path = str(root / f'{name}_{size[0]}x{size[1]}.{ext}')
            cv2.imwrite(path,
                        cv2.resize(image, size, interpolation=cv2.INTER_AREA))
            paths.append(path)
    return paths


@pytest.mark.slow
@pytest.mark.parametrize('task, backend', BUNDLES)
def test_bundle_predicts_as_pytorch_from_image_files(task, backend,
                                                     tiny_bundles, photos):
    bundle_dir, model_cfg, checkpoint = tiny_bundles(task, backend)
    predictor = Predictor(bundle_dir)
    reference = init_reference_model(task, Config.fromfile(model_cfg),
                                     checkpoint)
    worst = {}
    for photo in photos:
        expected = reference_prediction(task, reference, photo)
        figures = compare_predictions(expected, predictor(photo))
        assert figures['passed'], (photo, figures)
        if task == 'detection':
            assert figures['expected'] > 0, photo
        for key, value in figures.items():
            if key not in ('passed', 'same_top5', 'swapped_ties'):
                worst[key] = (min if key == 'agreement' else max)(worst.get(
                    key, value), value)
    # The figures quoted in docs/deployment.md (pytest -s shows them).
    print(f'\n{task} {backend}, {len(photos)} images, worst: {worst}')


@pytest.mark.slow
def test_bundle_records_what_a_device_needs(tiny_bundles):
    bundle = Bundle.load(tiny_bundles('detection', 'onnxruntime')[0])
    assert bundle.task == 'detection' and bundle.backend == 'onnxruntime'
    assert bundle.input_shape == [1, 3, 128, 128]
    assert list(bundle.manifest['files']) == [
        'end2end.onnx', 'deploy.json', 'pipeline.json', 'detail.json'
    ]
    assert [step['type']
            for step in bundle.preprocess] == ['load', 'resize', 'normalize']
    post = bundle.postprocess
    assert (post['score_thr'], post['nms_iou'],
            post['max_per_img']) == (0.01, 0.5, 200)
    assert post['box_coder']['stds'] == [0.1, 0.1, 0.2, 0.2]
    versions = bundle.manifest['versions']
    assert {'edgeformer_mm', 'torch', 'mmdeploy',
            'onnxruntime'} <= set(versions)


BLOCKER = '''
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError(name + ' is blocked in this test')

sys.meta_path.insert(0, Blocker())
from edgeformer_runtime.cli import main
try:
    main(sys.argv[1:])
finally:
    loaded = sorted({{m.split('.')[0] for m in sys.modules}} & {blocked!r})
    assert not loaded, loaded
'''


@pytest.mark.slow
def test_runtime_needs_no_pytorch_nor_openmmlab(tiny_bundles, photos,
                                                tmp_path):
    script = BLOCKER.format(blocked=set(HEAVY_PACKAGES))
    for task, backend in BUNDLES:
        if backend == 'executorch':  # its Python runtime links libtorch
            continue
        bundle_dir = tiny_bundles(task, backend)[0]
        out = str(tmp_path / f'{task}_{backend}.png')
        result = subprocess.run([
            sys.executable, '-c', script, bundle_dir, photos[1], '--out', out
        ],
                                capture_output=True,
                                text=True,
                                cwd=str(tmp_path))
        assert result.returncode == 0, result.stderr[-2000:]
        printed = json.loads(result.stdout)
        expected = Predictor(bundle_dir)(photos[1])
        assert printed['task'] == task
        if task == 'segmentation':
            assert printed['out'] == out
            label_map = cv2.imread(out, cv2.IMREAD_UNCHANGED)
            assert printed['shape'] == list(label_map.shape)
            assert np.array_equal(label_map, expected['label_map'])
        else:
            expected.pop('pred_scores', None)
            assert printed == json.loads(json.dumps(expected))


def test_classification_parity_lets_only_tied_scores_swap():
    expected = dict(
        task='classification',
        pred_scores=np.array([0., .5, .3, .3 - 1e-6, .1]),
        top5=dict(labels=[1, 2, 3, 4, 0], scores=[.5, .3, .3 - 1e-6, .1, 0.]))
    tied = dict(
        expected,
        top5=dict(labels=[1, 3, 2, 4, 0], scores=[.5, .3, .3 - 1e-6, .1, 0.]))
    figures = compare_predictions(expected, tied)
    assert figures['passed'] and figures['swapped_ties'] == 2
    # From the command's JSON (no pred_scores), and a real swap.
    del expected['pred_scores']
    assert compare_predictions(expected, tied)['passed']
    swapped = dict(
        expected,
        top5=dict(labels=[2, 1, 3, 4, 0], scores=[.5, .3, .3 - 1e-6, .1, 0.]))
    assert not compare_predictions(expected, swapped)['passed']
