"""mmdeploy's SDK files for a deployment directory (deploy.json,
pipeline.json, detail.json: edgeformer_mm.deployment.sdk) and, marked
slow, mmdeploy's SDK itself (the mmdeploy_runtime 1.3.1 wheel, with its own
ONNX Runtime 1.15.1, in this process beside onnxruntime) on the ONNX Runtime
bundles of the three tiny models (``tiny_bundles``: tools/deploy.py
--dump-info), against this package's runtime (edgeformer_runtime) on
scikit-image's photos.

Pinned here: the SDK's CenterCrop rounds a half-pixel offset up where
mmcv's rounds half to even, and mmdeploy's own entry for mmpretrain's
ResizeEdge (keep_ratio true) can make the short edge a pixel shorter, which
sdk.py avoids. The SDK's ResizeBBox clips boxes to the image's width - 1
and height - 1 where mmdet (and the runtime) clip to width and height (and
so drops a box starting past them), so boxes are compared after clipping
both to [0, w - 1] x [0, h - 1].

With numpy 2 the wheel's Python API (pybind11 older than 2.12) makes some
arrays with zero strides: the Detector's labels all read as the last one
written and the Segmentor's outputs as their first value. The Segmentor's
buffer is intact (its strides are repaired here); the Detector's labels are
lost, so detections are read through the SDK's C API (ctypes) instead.
"""
import copy
import ctypes
import functools
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from conftest import TINY_MODELS
from helpers import REPO, write_photo
from mmengine.config import Config

from edgeformer_mm.deployment.sdk import SDK_FILES, dump_sdk_info, sdk_info
from edgeformer_runtime import Predictor, preprocess

# The ONNX Runtime deploy config of each task's files.
DEPLOY_CFGS = {
    'classification': 'classification_onnxruntime_static-64x64.py',
    'detection': 'detection_onnxruntime_dynamic.py',
    'segmentation': 'segmentation_onnxruntime_dynamic.py',
}
PHOTOS = ('astronaut', 'coffee', 'chelsea')
CHECKPOINT = 'work_dirs/model.pth'


def paths(task, deploy=None):
    """(deploy config, model config) of a task's tiny model, with its
    deploy config or ``deploy``."""
    deploy = deploy or DEPLOY_CFGS[task]
    return (osp.join(REPO, 'configs', 'mmdeploy',
                     deploy), osp.join(REPO, TINY_MODELS[task][0]))


def read(work_dir):
    """The contents of the SDK files in ``work_dir``."""
    contents = []
    for name in SDK_FILES:
        with open(osp.join(work_dir, name)) as f:
            contents.append(json.load(f))
    return contents


def transforms_of(info):
    """The preprocessing transforms of sdk_info's result."""
    return info['pipeline.json']['pipeline']['tasks'][0]['transforms']


@pytest.fixture(scope='module')
def dumped(tmp_path_factory):
    """A function from a task to the contents of the files that
    dump_sdk_info wrote for it (made once each)."""

    @functools.lru_cache(maxsize=None)
    def dump(task):
        work_dir = str(tmp_path_factory.mktemp(task))
        written = dump_sdk_info(*paths(task), work_dir, CHECKPOINT)
        assert written == [osp.join(work_dir, name) for name in SDK_FILES]
        assert sorted(os.listdir(work_dir)) == sorted(SDK_FILES)
        return read(work_dir)

    return dump


NORMALIZE = dict(
    type='Normalize', to_rgb=False, mean=[0, 0, 0], std=[255, 255, 255])


def test_classification_files(dumped):
    import mmdeploy
    import mmpretrain

    deploy, pipeline, detail = dumped('classification')
    assert deploy == dict(
        version=mmdeploy.__version__,
        task='Classifier',
        models=[
            dict(
                name='edgeformer',
                net='end2end.onnx',
                weights='',
                backend='onnxruntime',
                precision='FP32',
                batch_size=1,
                dynamic_shape=False)
        ],
        customs=[])
    assert pipeline['pipeline']['input'] == ['img']
    assert pipeline['pipeline']['output'] == ['post_output']
    preprocess, net, postprocess = pipeline['pipeline']['tasks']
    # ResizeEdge(scale=72, edge='short') as the SDK computes it exactly.
    assert preprocess['transforms'] == [
        dict(type='LoadImageFromFile'),
        dict(
            type='Resize',
            keep_ratio=False,
            size=[72, -1],
            interpolation='bilinear'),
        dict(type='CenterCrop', crop_size=64),
        NORMALIZE,
        dict(type='ImageToTensor', keys=['img']),
        preprocess['transforms'][-1],
    ]
    assert preprocess['transforms'][-1]['type'] == 'Collect'
    assert net['module'] == 'Net'
    assert net['input_map'] == dict(img='input')
    # DropoutLinearClsHead: the SDK's LinearClsHead ranks the graph's
    # probabilities.
    assert postprocess['module'] == 'mmcls'
    assert postprocess['component'] == 'LinearClsHead'
    assert postprocess['params']['topk'] == 1
    assert postprocess['params'].get('softmax', False) is False
    assert detail['codebase'] == dict(
        task='Classification',
        codebase='mmpretrain',
        version=mmpretrain.__version__,
        pth=CHECKPOINT,
        config=paths('classification')[1])
    assert detail['onnx_config']['input_shape'] == [64, 64]
    assert detail['backend_config'] == dict(type='onnxruntime')


def test_detection_files(dumped):
    deploy, pipeline, detail = dumped('detection')
    assert deploy['task'] == 'Detector'
    assert deploy['models'][0]['dynamic_shape'] is True
    preprocess, net, postprocess = pipeline['pipeline']['tasks']
    assert preprocess['transforms'][:4] == [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', keep_ratio=False, size=[128, 128]),
        NORMALIZE,
        dict(type='Pad', size_divisor=1),
    ]
    # SSDLiteHead is not named: the graph ends with dets and labels, which
    # the SDK's ResizeBBox maps back to the image.
    assert postprocess['module'] == 'mmdet'
    assert postprocess['component'] == 'ResizeBBox'
    assert postprocess['params'] == dict(
        nms_pre=1000,
        nms=dict(type='nms', iou_threshold=0.5),
        min_bbox_size=0,
        score_thr=0.01,
        max_per_img=200)
    assert postprocess['input'] == ['prep_output', 'infer_output']
    assert detail['codebase']['codebase'] == 'mmdet'


def test_segmentation_files(dumped):
    deploy, pipeline, detail = dumped('segmentation')
    assert deploy['task'] == 'Segmentor'
    preprocess, net, postprocess = pipeline['pipeline']['tasks']
    # The model's SegDataPreProcessor has no test_cfg: it pads no test
    # input (its size=(128, 128) pads training batches).
    assert preprocess['transforms'][:3] == [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', keep_ratio=False, size=[128, 128]),
        NORMALIZE,
    ]
    # DeepLabV3Head is no SDK component: ResizeMask resizes the logits
    # (with_argmax=False in the graph) to the image, bilinear.
    assert postprocess['module'] == 'mmseg'
    assert postprocess['component'] == 'ResizeMask'
    assert postprocess['params']['num_classes'] == 5
    assert postprocess['params']['with_argmax'] is False
    assert postprocess['params']['align_corners'] is False
    assert detail['codebase_config']['with_argmax'] is False


@pytest.mark.parametrize('task', list(DEPLOY_CFGS))
def test_differs_from_mmdeploys_own_only_where_adjusted(
        dumped, task, tmp_path):
    from mmdeploy.backend.sdk.export_info import export2SDK

    export2SDK(*paths(task), str(tmp_path), CHECKPOINT, 'cpu')
    ours = dumped(task)
    theirs = read(tmp_path)
    assert ours[0] == theirs[0] and ours[2] == theirs[2]
    ours, theirs = (p['pipeline']['tasks'] for p in (ours[1], theirs[1]))
    if task == 'classification':
        assert theirs[0]['transforms'][1] == dict(
            type='Resize', keep_ratio=True, size=[72, -1])
        assert theirs[2]['component'] == 'DropoutLinearClsHead'
        theirs[0]['transforms'][1] = ours[0]['transforms'][1]
        theirs[2]['component'] = ours[2]['component']
    assert ours == theirs


def test_leaves_the_configs_as_they_were():
    from mmdeploy.utils import load_config

    deploy_cfg, model_cfg = load_config(*paths('classification'))
    before = copy.deepcopy(model_cfg.to_dict()), deploy_cfg.to_dict()
    sdk_info(deploy_cfg, model_cfg)
    assert (model_cfg.to_dict(), deploy_cfg.to_dict()) == before


def classification_cfg(transform):
    cfg = Config.fromfile(paths('classification')[1])
    cfg.test_pipeline = [
        dict(type='LoadImageFromFile'), transform,
        dict(type='PackInputs')
    ]
    return cfg


def segmentation_cfg(resize_scale=(128, 128), keep_ratio=False, **changes):
    cfg = Config.fromfile(paths('segmentation')[1])
    cfg.test_pipeline[1] = dict(
        type='Resize', scale=resize_scale, keep_ratio=keep_ratio)
    cfg.merge_from_dict(changes)
    return cfg


DYNAMIC_CLASSIFICATION = paths('classification',
                               'classification_onnxruntime_dynamic.py')[0]


def test_center_crop_size_becomes_height_width():
    cfg = classification_cfg(dict(type='CenterCrop', crop_size=(64, 48)))
    transforms = transforms_of(sdk_info(DYNAMIC_CLASSIFICATION, cfg))
    assert transforms[1] == dict(type='CenterCrop', crop_size=[48, 64])


@pytest.mark.parametrize(
    'model_cfg', [
        segmentation_cfg((256, 128), keep_ratio=True),
        segmentation_cfg(
            model=dict(data_preprocessor=dict(test_cfg=dict(size=(128,
                                                                  128))))),
        segmentation_cfg(
            model=dict(data_preprocessor=dict(test_cfg=dict(
                size_divisor=32)))),
    ],
    ids=['no-test-cfg', 'test-size-reached', 'test-divisor-reached'])
def test_accepts_segmentation_that_pads_no_test_input(model_cfg):
    """The top-level size pads training batches only; a test_cfg that the
    fixed resize already satisfies pads nothing."""
    resize = transforms_of(sdk_info(paths('segmentation')[0], model_cfg))[1]
    assert resize['type'] == 'Resize'


@pytest.mark.parametrize(
    'deploy_cfg, model_cfg, message', [
        (paths('detection', 'detection_ncnn_static-320x320.py')[0],
         paths('detection')[1], "ending with 'dets' and 'labels'"),
        (paths('segmentation')[0],
         segmentation_cfg(
             (256, 128),
             keep_ratio=True,
             model=dict(
                 data_preprocessor=dict(test_cfg=dict(size_divisor=32)))),
         'pads the test input'),
        (paths('segmentation')[0],
         segmentation_cfg(
             model=dict(
                 data_preprocessor=dict(test_cfg=dict(size=(160, 128))))),
         'pads the test input'),
        (paths('segmentation')[0],
         segmentation_cfg(model=dict(test_cfg=dict(mode='slide'))),
         "'whole' inference"),
        (DYNAMIC_CLASSIFICATION,
         classification_cfg(dict(type='ResizeEdge', scale=72,
                                 edge='long')), 'short edge only'),
        (DYNAMIC_CLASSIFICATION,
         classification_cfg(
             dict(type='ResizeEdge', scale=72,
                  backend='pillow')), 'resizes as cv2'),
    ],
    ids=[
        'ncnn-detection', 'seg-test-divisor', 'seg-test-size', 'seg-slide',
        'resize-long-edge', 'pillow'
    ])
def test_refuses_what_the_sdk_would_run_otherwise(deploy_cfg, model_cfg,
                                                  message, tmp_path):
    with pytest.raises(ValueError, match=message):
        dump_sdk_info(deploy_cfg, model_cfg, str(tmp_path))
    assert os.listdir(tmp_path) == []


# The SDK itself, against edgeformer_runtime.


@pytest.fixture(scope='module')
def sdk():
    return pytest.importorskip(
        'mmdeploy_runtime',
        reason='mmdeploy_runtime (the mmdeploy SDK) is not installed')


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """name -> (PNG file, the BGR image in it): the photos and two crops
    whose sizes show where the SDK's resize and center crop round
    differently."""
    pytest.importorskip(
        'skimage', reason='scikit-image (the test photos) is not installed')
    root = tmp_path_factory.mktemp('photos')
    images = {
        name: cv2.imread(write_photo(name, root / f'{name}.png'))
        for name in PHOTOS
    }
    # ResizeEdge(72) -> 72x74; mmdeploy's keep_ratio resize makes 71x74.
    images['chelsea_300x311'] = images['chelsea'][:, :311]
    # ResizeEdge(72) -> 72x109: (109 - 64) / 2 = 22.5 rounds to 22 in
    # mmcv's CenterCrop, to 23 in the SDK's.
    images['coffee_300x455'] = images['coffee'][:300, :455]
    photos = {}
    for name, image in images.items():
        path = str(root / f'{name}.png')
        cv2.imwrite(path, image)
        photos[name] = (path, cv2.imread(path))
    return photos


def repaired(array):
    """An array of the SDK's Python API with the C-order strides that
    numpy 2 lost (see the module docstring); for arrays over the SDK's own
    buffer only."""
    if 0 not in array.strides or array.size <= 1:
        return array
    strides = np.cumprod((array.shape[1:] + (1, ))[::-1])[::-1]
    return np.lib.stride_tricks.as_strided(
        array, array.shape,
        tuple(int(s) * array.itemsize for s in strides)).copy()


class _Mat(ctypes.Structure):  # mmdeploy_mat_t
    _fields_ = [('data', ctypes.c_void_p), ('height', ctypes.c_int),
                ('width', ctypes.c_int), ('channel', ctypes.c_int),
                ('format', ctypes.c_int), ('type', ctypes.c_int),
                ('device', ctypes.c_void_p)]


class _Detection(ctypes.Structure):  # mmdeploy_detection_t
    _fields_ = [('label_id', ctypes.c_int), ('score', ctypes.c_float),
                ('bbox', ctypes.c_float * 4), ('mask', ctypes.c_void_p)]


def c_api_detections(sdk, bundle, image):
    """The SDK Detector's detections of a BGR image through its C API:
    (N, 6) rows of label, score, x1, y1, x2, y2."""
    lib = ctypes.CDLL(osp.join(osp.dirname(sdk.__file__), 'libmmdeploy.so.1'))
    detector = ctypes.c_void_p()
    results = ctypes.POINTER(_Detection)()
    counts = ctypes.POINTER(ctypes.c_int)()
    assert lib.mmdeploy_detector_create_by_path(bundle.encode(), b'cpu', 0,
                                                ctypes.byref(detector)) == 0
    mat = _Mat(image.ctypes.data, *image.shape, 0, 2, None)  # BGR, uint8
    assert lib.mmdeploy_detector_apply(detector, ctypes.byref(mat), 1,
                                       ctypes.byref(results),
                                       ctypes.byref(counts)) == 0
    rows = [(d.label_id, d.score, *d.bbox) for d in results[:counts[0]]]
    lib.mmdeploy_detector_release_result(results, counts, 1)
    lib.mmdeploy_detector_destroy(detector)
    return np.array(rows, np.float32).reshape(-1, 6)


def network_scores(predictor, path, steps, crop_x=None):
    """The class scores of the bundle's network for ``path`` preprocessed
    by ``steps``, cropped to 64x64 at column ``crop_x`` if given."""
    image = preprocess(path, steps).input
    if crop_x is not None:
        y = (image.shape[1] - 64) // 2
        image = np.ascontiguousarray(image[:, y:y + 64, crop_x:crop_x + 64])
    return predictor.backend(image)['output'].reshape(-1)


@pytest.mark.slow
def test_sdk_classifier_as_the_runtime(sdk, tiny_bundles, photos, tmp_path):
    bundle = tiny_bundles('classification', 'onnxruntime')[0]
    classifier = sdk.Classifier(bundle, 'cpu', 0)
    predictor = Predictor(bundle)
    labels = set()
    for name in (*PHOTOS, 'chelsea_300x311'):
        path, image = photos[name]
        [(label, score)] = classifier(image)
        ours = predictor(path)
        difference = abs(score - ours['pred_score'])
        assert label == ours['pred_label'] and difference <= 1e-4, name
        labels.add(label)
        print(f'{name}: class {label}, score {score:.6f}, the runtime\'s '
              f'within {difference:.2g}')
    assert len(labels) > 1  # the input matters

    steps = predictor.bundle.preprocess
    assert [s['type'] for s in steps
            ] == ['load', 'resize_edge', 'center_crop', 'normalize']
    # mmcv's CenterCrop (the runtime) takes column 22 of 109, the SDK's 23.
    path, image = photos['coffee_300x455']
    [(label, score)] = classifier(image)
    uncropped = [s for s in steps if s['type'] != 'center_crop']
    at_22, at_23 = (
        network_scores(predictor, path, uncropped, x) for x in (22, 23))
    assert np.abs(predictor(path)['pred_scores'] - at_22).max() <= 1e-6
    assert abs(score - at_23[label]) <= 1e-5
    assert abs(at_22 - at_23).max() > 1e-4
    print(f'coffee 300x455: SDK {score:.6f}, the runtime {at_22[label]:.6f}')

    # mmdeploy's own entry for ResizeEdge resizes 300x311 to 71x74.
    own = tmp_path / 'mmdeploy_resize'
    own.mkdir()
    os.symlink(osp.join(bundle, 'end2end.onnx'), own / 'end2end.onnx')
    deploy, pipeline, _ = read(bundle)
    pipeline['pipeline']['tasks'][0]['transforms'][1] = dict(
        type='Resize', keep_ratio=True, size=[72, -1])
    (own / 'deploy.json').write_text(json.dumps(deploy))
    (own / 'pipeline.json').write_text(json.dumps(pipeline))
    path, image = photos['chelsea_300x311']
    [(label, score)] = sdk.Classifier(str(own), 'cpu', 0)(image)
    short = network_scores(predictor, path, [
        steps[0],
        dict(type='resize', size=[71, 74], interpolation='bilinear'),
        *steps[2:]
    ])
    assert abs(score - short[label]) <= 1e-5
    print(f'chelsea 300x311 with keep_ratio: SDK {score:.6f}, the runtime '
          f'{predictor(path)["pred_scores"][label]:.6f}')


@pytest.mark.slow
def test_sdk_detector_as_the_runtime(sdk, tiny_bundles, photos):
    bundle = tiny_bundles('detection', 'onnxruntime')[0]
    predictor = Predictor(bundle)
    for name in PHOTOS:
        path, image = photos[name]
        height, width = image.shape[:2]
        theirs = c_api_detections(sdk, bundle, image)
        labels = theirs[:, 0].astype(np.int64)
        assert len(set(labels.tolist())) > 1
        # The SDK's ResizeBBox clamps x1, y1 to >= 0 and x2, y2 to <= w - 1,
        # h - 1 (mmdet and the runtime: to [0, w] x [0, h]), then drops
        # boxes left with a negative width or height (those starting past
        # w - 1 or h - 1). Compared: both clipped to [0, w - 1] x [0, h - 1].
        bounds = np.array([width - 1, height - 1] * 2, np.float32)
        ours = predictor(path)['detections']
        starts = np.array([d['bbox'][:2] for d in ours]).reshape(-1, 2)
        ours = [d for d, s in zip(ours, starts) if (s <= bounds[:2]).all()]
        assert len(theirs) == len(ours) > 0, name
        boxes = theirs[:, 2:].clip(0, bounds)
        paired = np.zeros(len(theirs), bool)
        box = score = 0.
        for detection in ours:  # best first
            expected = np.clip(detection['bbox'], 0, bounds)
            candidates = np.flatnonzero(~paired
                                        & (labels == detection['label']))
            assert len(candidates), (name, detection)
            distance = np.abs(boxes[candidates] - expected).max(axis=1)
            j = candidates[distance.argmin()]
            paired[j] = True
            box = max(box, distance.min())
            score = max(score, abs(theirs[j, 1] - detection['score']))
        assert box <= 0.01 and score <= 1e-4, (name, box, score)
        dropped = len(starts) - len(ours)
        print(f'{name}: {len(ours)} detections paired ({dropped} past the '
              f"SDK's bounds), boxes within {box:.2g} px, scores within "
              f'{score:.2g}')


@pytest.mark.slow
def test_sdk_segmentor_as_the_runtime(sdk, tiny_bundles, photos):
    bundle = tiny_bundles('segmentation', 'onnxruntime')[0]
    segmentor = sdk.Segmentor(bundle, 'cpu', 0)
    predictor = Predictor(bundle)
    for name in PHOTOS:
        path, image = photos[name]
        logits = repaired(segmentor(image))
        assert logits.shape == (5, *image.shape[:2])
        label_map = predictor(path)['label_map']
        assert len(np.unique(label_map)) > 1
        agreement = (logits.argmax(axis=0) == label_map).mean()
        assert agreement >= 0.999, (name, agreement)
        print(f'{name}: same class on {100 * agreement:.3f}% of the pixels')
