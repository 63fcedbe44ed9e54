"""edgeformer_runtime on a small hand-made bundle: what it refuses (bundles
that are not, changed or missing files, another task or backend, images it
cannot use), what it converts (grayscale and RGBA files, as mmcv does), and
the JSON its command line prints. The predictions of real bundles against
PyTorch are checked in test_deployment/test_bundle.py."""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeformer_runtime import (Bundle, BundleError, ImageError, Predictor,
                                file_digest)
from edgeformer_runtime.bundle import FORMAT, FORMAT_VERSION
from edgeformer_runtime.postprocess import resize_bilinear
from edgeformer_runtime.preprocess import resize_bilinear_u8, resize_nearest_u8

NUM_CLASSES = 6


def write_network(path: str, task: str = 'classification'):
    """An ONNX network of 16x16 inputs: a 1x1 convolution to 6 classes, then
    for classification average pooling and softmax."""
    rng = np.random.default_rng(0)
    weight = helper.make_tensor('weight', TensorProto.FLOAT,
                                [NUM_CLASSES, 3, 1, 1],
                                rng.normal(size=NUM_CLASSES * 3) * 4)
    if task == 'classification':
        nodes = [
            helper.make_node('Conv', ['input', 'weight'], ['conv']),
            helper.make_node('GlobalAveragePool', ['conv'], ['pool']),
            helper.make_node('Flatten', ['pool'], ['logits']),
            helper.make_node('Softmax', ['logits'], ['output'], axis=1),
        ]
        shape = [1, NUM_CLASSES]
    else:
        nodes = [helper.make_node('Conv', ['input', 'weight'], ['output'])]
        shape = [1, NUM_CLASSES, 16, 16]
    graph = helper.make_graph(nodes, task, [
        helper.make_tensor_value_info('input', TensorProto.FLOAT,
                                      [1, 3, 16, 16])
    ], [helper.make_tensor_value_info('output', TensorProto.FLOAT, shape)],
                              [weight])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    onnx.save(model, path)


def write_manifest(root: str, **changes):
    manifest = {
        'format':
        FORMAT,
        'format_version':
        FORMAT_VERSION,
        'task':
        'classification',
        'model':
        'hand-made',
        'backend':
        'onnxruntime',
        'precision':
        'fp32',
        'input': {
            'name': 'input',
            'shape': [1, 3, 16, 16]
        },
        'outputs': ['output'],
        'files': {
            'end2end.onnx': file_digest(osp.join(root, 'end2end.onnx'))
        },
        'preprocess': [{
            'type': 'load',
            'channel_order': 'bgr'
        }, {
            'type': 'resize_edge',
            'edge': 'short',
            'scale': 18,
            'interpolation': 'bilinear'
        }, {
            'type': 'center_crop',
            'size': [16, 16]
        }, {
            'type': 'normalize',
            'mean': [100, 110, 120],
            'std': [50, 60, 70],
            'to_rgb': True
        }],
        'postprocess': {
            'class_names': [f'class {i}' for i in range(NUM_CLASSES)],
            'topk': 5
        },
        'versions': {},
    }
    manifest.update(changes)
    with open(osp.join(root, 'bundle.json'), 'w') as f:
        json.dump(manifest, f)


@pytest.fixture
def bundle(tmp_path):
    root = str(tmp_path / 'bundle')
    os.makedirs(root)
    write_network(osp.join(root, 'end2end.onnx'))
    write_manifest(root)
    return root


@pytest.fixture
def segmentation_bundle(tmp_path):
    root = str(tmp_path / 'segmentation')
    os.makedirs(root)
    write_network(osp.join(root, 'end2end.onnx'), 'segmentation')
    write_manifest(
        root,
        task='segmentation',
        preprocess=[{
            'type': 'load',
            'channel_order': 'bgr'
        }, {
            'type': 'resize',
            'size': [16, 16],
            'keep_ratio': False,
            'interpolation': 'bilinear'
        }, {
            'type': 'normalize',
            'mean': [0, 0, 0],
            'std': [255, 255, 255],
            'to_rgb': False
        }],
        postprocess={
            'class_names': None,
            'palette': None,
            'align_corners': False
        })
    return root


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('image') / 'image.png')
    rng = np.random.default_rng(1)
    cv2.imwrite(path, rng.integers(0, 256, (30, 41, 3), np.uint8))
    return path


def run_cli(*args):
    return subprocess.run(
        [sys.executable, '-m', 'edgeformer_runtime', *map(str, args)],
        capture_output=True,
        text=True)


def test_prediction_from_a_file_and_from_its_array(bundle, image):
    predictor = Predictor(bundle)
    result = predictor(image)
    scores = result['pred_scores']
    assert scores.shape == (NUM_CLASSES, ) and abs(scores.sum() - 1) < 1e-5
    assert result['pred_label'] == int(scores.argmax())
    assert result['top5']['labels'] == list(np.argsort(-scores)[:5])
    assert result['pred_class'] == f'class {result["pred_label"]}'
    from_array = predictor(cv2.imread(image))
    assert np.array_equal(from_array['pred_scores'], scores)


def test_command_line_prints_one_json_object(bundle, image):
    result = run_cli(bundle, image)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    expected = Predictor(bundle)(image)
    assert printed['task'] == 'classification'
    assert printed['pred_label'] == expected['pred_label']
    assert printed['top5'] == json.loads(json.dumps(expected['top5']))


@pytest.mark.parametrize('damage, message', [
    ('missing manifest', 'bundle.json is missing'),
    ('missing model', 'end2end.onnx is missing'),
    ('changed model', 'end2end.onnx differs'),
    ('not json', 'cannot read'),
    ('newer format', 'format version 2'),
    ('wrong outputs', "outputs \\['output'\\], not \\['dets'\\]"),
    ('unknown task', "unknown task 'pose'"),
])
def test_bad_bundles_are_refused_naming_the_file(bundle, image, damage,
                                                 message):
    manifest = osp.join(bundle, 'bundle.json')
    model = osp.join(bundle, 'end2end.onnx')
    if damage == 'missing manifest':
        os.remove(manifest)
    elif damage == 'missing model':
        os.remove(model)
    elif damage == 'changed model':
        with open(model, 'ab') as f:
            f.write(b'\0')
    elif damage == 'not json':
        with open(manifest, 'w') as f:
            f.write('{')
    elif damage == 'newer format':
        write_manifest(bundle, format_version=2)
    elif damage == 'wrong outputs':
        write_manifest(bundle, outputs=['dets'])
    else:
        write_manifest(bundle, task='pose')
    with pytest.raises(BundleError, match=message):
        Bundle.load(bundle)
    result = run_cli(bundle, image)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('edgeformer-run: error:')


def test_a_bundle_for_another_task_or_backend_is_refused(bundle):
    with pytest.raises(
            BundleError, match='classification bundle, not '
            'detection'):
        Bundle.load(bundle, task='detection')
    with pytest.raises(BundleError, match='onnxruntime, not ncnn'):
        Bundle.load(bundle, backend='ncnn')


def test_bad_images_are_refused(bundle, tmp_path):
    predictor = Predictor(bundle)
    text = tmp_path / 'notes.png'
    text.write_text('not an image')
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    for path, message in [(text, 'not an image'), (empty, 'not an image'),
                          (tmp_path / 'missing.png', 'cannot read')]:
        with pytest.raises(ImageError, match=message):
            predictor(str(path))
        result = run_cli(bundle, path)
        assert result.returncode == 1 and message in result.stderr
    for array in [
            np.zeros((20, 20, 3), np.float32),
            np.zeros((20, 20, 4), np.uint8),
            np.zeros((20, 20), np.uint8)
    ]:
        with pytest.raises(ImageError, match=r'uint8 \(H, W, 3\)'):
            predictor(array)


def test_images_too_small_for_the_crop_are_refused(bundle):
    manifest = Bundle.load(bundle).manifest
    del manifest['preprocess'][1]  # crop without resizing first
    write_manifest(bundle, preprocess=manifest['preprocess'])
    with pytest.raises(ImageError, match='smaller than the 16x16 center'):
        Predictor(bundle)(np.zeros((10, 40, 3), np.uint8))


def test_grayscale_and_rgba_files_are_read_as_mmcv_reads_them(
        bundle, image, tmp_path):
    """Grayscale is repeated to three channels, the alpha channel dropped
    (OpenCV's IMREAD_COLOR, as mmcv's LoadImageFromFile)."""
    predictor = Predictor(bundle)
    bgr = cv2.imread(image)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / 'gray.png'), gray)
    cv2.imwrite(
        str(tmp_path / 'rgba.png'),
        np.dstack([bgr, np.full(gray.shape, 7, np.uint8)]))
    expected_gray = predictor(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    assert np.array_equal(
        predictor(str(tmp_path / 'gray.png'))['pred_scores'],
        expected_gray['pred_scores'])
    assert np.array_equal(
        predictor(str(tmp_path / 'rgba.png'))['pred_scores'],
        predictor(bgr)['pred_scores'])


def test_a_missing_backend_is_named(bundle, image, tmp_path):
    blocked = tmp_path / 'blocked'
    blocked.mkdir()
    (blocked / 'onnxruntime.py').write_text('raise ImportError("absent")')
    result = subprocess.run(
        [sys.executable, '-m', 'edgeformer_runtime', bundle, image],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(blocked)))
    assert result.returncode == 1
    assert ('the bundle is for onnxruntime, which is not installed'
            in result.stderr)


def test_segmentation_writes_the_label_map_as_png(segmentation_bundle, image,
                                                  tmp_path):
    out = tmp_path / 'map.png'
    result = run_cli(segmentation_bundle, image, '--out', out)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    label_map = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert printed == dict(task='segmentation', out=str(out), shape=[30, 41])
    assert np.array_equal(label_map,
                          Predictor(segmentation_bundle)(image)['label_map'])
    for args, message in [((), 'give --out FILE.png'),
                          (('--out', tmp_path / 'map.jpg'), 'must be a .png')]:
        result = run_cli(segmentation_bundle, image, *args)
        assert result.returncode == 1 and message in result.stderr


@pytest.mark.parametrize('align_corners', [False, True])
def test_bilinear_resize_equals_pytorch(align_corners):
    torch = pytest.importorskip('torch')
    x = np.random.default_rng(0).normal(size=(5, 7, 11)).astype(np.float32)
    for size in [(20, 31), (3, 4), (7, 11), (1, 1)]:
        expected = torch.nn.functional.interpolate(
            torch.from_numpy(x)[None],
            size=size,
            mode='bilinear',
            align_corners=align_corners)[0].numpy()
        actual = resize_bilinear(x, size, align_corners)
        assert np.abs(actual - expected).max() < 1e-5, size


def test_resizes_equal_opencv_on_x86():
    """The runtime's own 8-bit bilinear and nearest resizes are OpenCV's on
    x86 bit for bit (OpenCV's ARM build rounds differently), exact halving
    (which OpenCV averages) included."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        height, width = rng.integers(1, 200, 2)
        for size in [(height, width), (2 * height, 2 * width),
                     tuple(rng.integers(1, 200, 2))]:
            image = rng.integers(0, 256, (*size, 3), np.uint8)
            for resize, flag in [(resize_bilinear_u8, cv2.INTER_LINEAR),
                                 (resize_nearest_u8, cv2.INTER_NEAREST)]:
                expected = cv2.resize(
                    image, (int(width), int(height)), interpolation=flag)
                assert np.array_equal(resize(image, width, height),
                                      expected), (size, height, width)
