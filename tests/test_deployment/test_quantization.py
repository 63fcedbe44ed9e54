"""int8 post-training quantization: ONNX Runtime's QDQ graph really runs
int8 kernels (the GCC's circulant products included) and stays close to
fp32 on real photos; tools/deploy.py writes int8 bundles for ONNX Runtime
and ncnn that the torch-free runtime runs; bad calibration sets are
refused with the file's name."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import TINY_MODELS
from helpers import REPO, run_main
from mmengine.config import Config

from edgeformer_mm.analysis.photos import (CALIBRATION_PHOTOS, TEST_PHOTOS,
                                           copy_photos)
from edgeformer_mm.deployment import (Arm64Emulation, CalibrationError,
                                      EmulationUnavailable, calibration_images,
                                      image_inputs, paired_detections,
                                      preprocess_steps, quantize_onnx)
from edgeformer_mm.deployment.mnn_int8 import mnn_int8_layers
from edgeformer_mm.deployment.ncnn_int8 import int8_layers
from edgeformer_mm.deployment.quantization import end_layers
from edgeformer_runtime import Bundle, Predictor

ort = pytest.importorskip('onnxruntime')
pytest.importorskip('skimage', reason='scikit-image is not installed')

CLASSIFIER, CLASSIFIER_SIZE = TINY_MODELS['classification']
# A class score ahead of the next by this much is clear; int8 must keep this
# share of the clear ones first.
CLEAR_MARGIN = 0.1
KEPT_TOP1 = 0.75
MEAN_SCORE_DIFFERENCE = 0.1
# The emulated CPU, and how far ncnn's int8 scores on it may be from x86's:
# its ARM kernels round differently, and a value one step apart moves what
# follows, the more in a fragile network: with random weights the ranked
# scores moved by 0.031 to 0.068 depending on the calibration method (enough
# to swap the top-1 classes), with the trained tiny classifier by 2e-3.
ARM_CPU = 'cortex-a76'
ARM_INT8_SCORE = 0.15
# ... and the share of x86's 10 most confident detections found on it (6 to
# 9 of 10 measured with random weights, whose detections are many and
# close in score; garbage finds none).
ARM_INT8_PAIRED = 0.5


@pytest.fixture(scope='module')
def photo_dirs(tmp_path_factory):
    """Folders of the test photos and of the calibration photos."""
    root = tmp_path_factory.mktemp('int8_photos')
    copy_photos(TEST_PHOTOS, str(root / 'test'))
    copy_photos(CALIBRATION_PHOTOS, str(root / 'calibration'))
    return str(root / 'test'), str(root / 'calibration')


def test_end_layers_are_the_stem_and_the_outputs():
    # input -> Transpose -> stem -> Relu -> a -> (head1), (Add -> head2)
    layers = [
        ('transpose', False, ['input'], ['t']),
        ('stem', True, ['t'], ['s']),
        ('relu', False, ['s'], ['r']),
        ('a', True, ['r'], ['x']),
        ('head1', True, ['x'], ['out1']),
        ('add', False, ['x', 'r'], ['y']),
        ('head2', True, ['y'], ['z']),
        ('softmax', False, ['z'], ['out2']),
    ]
    assert end_layers(layers, 'input') == dict(
        first=['stem'], last=['head1', 'head2'], tail=['softmax'])


def test_bad_calibration_sets_are_named(tmp_path, photo_dirs):
    with pytest.raises(CalibrationError, match='does not exist'):
        calibration_images(str(tmp_path / 'missing'))
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'notes.txt').write_text('no images here')
    with pytest.raises(CalibrationError, match='no images'):
        calibration_images(str(tmp_path / 'empty'))
    steps = preprocess_steps(Config.fromfile(osp.join(REPO, CLASSIFIER)))
    size = (CLASSIFIER_SIZE, CLASSIFIER_SIZE)
    good = osp.join(photo_dirs[1], CALIBRATION_PHOTOS[0])
    truncated = tmp_path / 'bad' / 'truncated.jpg'
    truncated.parent.mkdir()
    truncated.write_bytes(
        open(osp.join(photo_dirs[0], 'rocket.jpg'), 'rb').read()[:300])
    garbage = tmp_path / 'bad' / 'garbage.png'
    garbage.write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 4)
    for bad in [truncated, garbage]:
        with pytest.raises(CalibrationError, match=bad.name):
            image_inputs([good, str(bad)], steps, size)
    with pytest.raises(CalibrationError, match='static 32x32'):
        image_inputs([good], steps, (32, 32))
    with pytest.raises(CalibrationError, match='empty'):
        quantize_onnx('unused.onnx', 'unused.int8.onnx', [])


def session(path, optimized=None):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    if optimized:
        options.optimized_model_filepath = optimized
    return ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])


def test_onnx_int8_runs_int8_kernels_and_keeps_the_top1(
        tmp_path, tiny_classifier_onnx, photo_dirs):
    fp32_file, steps = tiny_classifier_onnx
    size = (CLASSIFIER_SIZE, CLASSIFIER_SIZE)
    calibration = image_inputs(calibration_images(photo_dirs[1]), steps, size)
    int8_file = str(tmp_path / 'int8.onnx')
    report = quantize_onnx(fp32_file, int8_file, calibration, 'percentile')

    # Every convolution and every product, the GCC's with its constant
    # circulant matrix included, reads int8 values.
    graph = onnx.load(int8_file).graph
    dequantized = {
        node.output[0]
        for node in graph.node if node.op_type == 'DequantizeLinear'
    }
    products = [n for n in graph.node if n.op_type in ('Conv', 'MatMul')]
    assert any(n.op_type == 'MatMul' for n in products)
    for node in products:
        assert set(node.input[:2]) <= dequantized, node.name
    assert report['int8_macs'] == report['macs'] > 0
    assert report['int8_layers'] == report['layers'] == len(products) + 1

    # ... and ONNX Runtime fuses them into int8 kernels.
    optimized = str(tmp_path / 'optimized.onnx')
    int8 = session(int8_file, optimized)
    kinds = {node.op_type for node in onnx.load(optimized).graph.node}
    assert {'QLinearConv', 'QLinearMatMul'} <= kinds
    assert not kinds & {'Conv', 'MatMul', 'FusedConv'}

    # Mostly the same class where fp32's is clear, and scores near fp32's.
    # Random weights make a fragile network (int8 moves its scores by up to
    # 0.1, more than some margins; 4 of the 5 clear photos kept, mean
    # difference 0.05, measured); a wrong scale gives chance (1 in 4).
    fp32 = session(fp32_file)
    photos = image_inputs(calibration_images(photo_dirs[0]), steps, size)
    expected = np.concatenate(
        [fp32.run(None, {'input': x})[0] for x in photos])
    actual = np.concatenate([int8.run(None, {'input': x})[0] for x in photos])
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > CLEAR_MARGIN
    print(f'{clear.sum()} photos with a clear class')
    assert clear.sum() >= 3
    kept = (actual.argmax(1) == expected.argmax(1))[clear].mean()
    assert kept >= KEPT_TOP1
    assert np.abs(actual - expected).mean() < MEAN_SCORE_DIFFERENCE

    kept = quantize_onnx(fp32_file, int8_file, calibration, 'entropy',
                         ['first', 'last'])
    assert len(kept['fp32_layers']) == 2  # the stem and the classifier
    assert kept['int8_layers'] == report['layers'] - 2
    assert kept['int8_macs'] < report['macs']
    with pytest.raises(ValueError, match='unknown calibration method'):
        quantize_onnx(fp32_file, int8_file, calibration, 'mean')


def int8_config(task, backend, size):
    """The int8 deploy config of a tiny model."""
    return osp.join(REPO, 'configs', 'mmdeploy',
                    f'{task}_{backend}-int8_static-{size}x{size}.py')


@pytest.fixture(scope='module')
def int8_bundles(tmp_path_factory, calibrated_checkpoint, photo_dirs):
    """A function from (task, backend) to the int8 bundle of the tiny model
    (calibrated random weights) written by tools/deploy.py, calibrated on
    the calibration photos; made once."""
    root = tmp_path_factory.mktemp('int8_bundles')
    made = {}

    def bundle(task, backend):
        if (task, backend) not in made:
            config, size = TINY_MODELS[task]
            model_cfg = osp.join(REPO, config)
            work_dir = str(root / f'{task}_{backend}')
            # Random weights: the argmax of a random segmentor flips on more
            # pixels than a trained one's (88% measured; the trained tiny
            # one's figures are in docs/deployment.md#int8).
            agreement = (['--min-agreement', '0.8']
                         if task == 'segmentation' else [])
            run_main('tools/deploy.py', model_cfg,
                     calibrated_checkpoint(model_cfg),
                     int8_config(task, backend, size),
                     osp.join(photo_dirs[0], 'coffee.png'), '--work-dir',
                     work_dir, '--calib-images', photo_dirs[1], *agreement)
            made[task, backend] = work_dir
        return made[task, backend]

    return bundle


@pytest.mark.slow
@pytest.mark.parametrize('task, backend', [('classification', 'onnxruntime'),
                                           ('classification', 'ncnn'),
                                           ('detection', 'ncnn'),
                                           ('segmentation', 'onnxruntime'),
                                           ('segmentation', 'mnn')])
def test_deploy_writes_int8_bundles_the_runtime_runs(task, backend, tmp_path,
                                                     int8_bundles, photo_dirs):
    work_dir = int8_bundles(task, backend)
    bundle = Bundle.load(work_dir)
    assert bundle.precision == 'int8'
    quantization = bundle.manifest['quantization']
    # MNN's quantizer has no percentile calibration (its configs: minmax).
    assert quantization['method'] == ('minmax'
                                      if backend == 'mnn' else 'percentile')
    assert quantization['calibration'].startswith(
        f'{len(CALIBRATION_PHOTOS)} images')
    assert 0.9 < quantization['int8_macs'] / quantization['macs'] <= 1
    if backend == 'ncnn':
        assert len(int8_layers(bundle.model_file('param'))) == (
            quantization['int8_layers'])
    elif backend == 'mnn':
        assert mnn_int8_layers(bundle.model_file('model'))['int8_layers'] == (
            quantization['int8_layers']) > 0
    else:
        graph = onnx.load(bundle.model_file('model')).graph
        kinds = {n.op_type for n in graph.node}
        assert 'QuantizeLinear' in kinds

    # The device's command runs it as it runs an fp32 bundle.
    photo = osp.join(photo_dirs[0], 'chelsea.png')
    out = ['--out', str(tmp_path /
                        'mask.png')] if task == 'segmentation' else []
    result = subprocess.run([
        sys.executable, '-m', 'edgeformer_runtime.cli', work_dir, photo, *out
    ],
                            capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed['task'] == bundle.task


def test_deploy_int8_needs_a_calibration_set(tmp_path, calibrated_checkpoint,
                                             photo_dirs):
    model_cfg = osp.join(REPO, CLASSIFIER)
    checkpoint = calibrated_checkpoint(model_cfg)
    photo = osp.join(photo_dirs[0], 'coffee.png')
    int8 = int8_config('classification', 'onnxruntime', CLASSIFIER_SIZE)
    with pytest.raises(SystemExit, match='give the calibration images'):
        run_main('tools/deploy.py', model_cfg, checkpoint, int8, photo,
                 '--work-dir', tmp_path / 'a')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SystemExit, match='no images'):
        run_main('tools/deploy.py', model_cfg, checkpoint, int8, photo,
                 '--work-dir', tmp_path / 'b', '--calib-images',
                 tmp_path / 'empty')
    fp32 = osp.join(REPO, 'configs', 'mmdeploy',
                    'classification_onnxruntime_static-64x64.py')
    with pytest.raises(SystemExit, match='not an int8 config'):
        run_main('tools/deploy.py', model_cfg, checkpoint, fp32, photo,
                 '--work-dir', tmp_path / 'c', '--calib-images', photo_dirs[1])
    mnn_int8 = int8_config('classification', 'mnn', CLASSIFIER_SIZE)
    with pytest.raises(SystemExit, match='MNN has no .percentile.'):
        run_main('tools/deploy.py', model_cfg, checkpoint, mnn_int8, photo,
                 '--work-dir', tmp_path / 'd', '--calib-images', photo_dirs[1],
                 '--calib-method', 'percentile')


@pytest.mark.slow
def test_int8_bundles_on_arm_match_x86(int8_bundles, photo_dirs):
    """ncnn's int8 kernels on emulated aarch64 (Cortex-A76) against x86, in
    the Python runtime and the C++ example."""
    try:
        emu = Arm64Emulation.ensure()
    except EmulationUnavailable as error:
        pytest.skip(f'arm64 emulation unavailable: {error}')
    photo = osp.join(photo_dirs[0], 'chelsea.png')
    exe = emu.build_cpp()
    for task in ('classification', 'detection'):
        bundle = int8_bundles(task, 'ncnn')
        x86 = Predictor(bundle, num_threads=1)(photo)
        arm = json.loads(
            emu.runtime_cli(
                bundle, photo, args=['--threads', '1'], cpu=ARM_CPU).stdout)
        cpp = json.loads(
            emu.run(exe, [bundle, photo, '--threads', '1'],
                    cpu=ARM_CPU).stdout)
        if task == 'classification':
            differences = np.abs(
                np.subtract(x86['top5']['scores'], arm['top5']['scores']))
            print(f'\nint8 classifier, arm vs x86: scores within '
                  f'{differences.max():.2g}')
            assert differences.max() < ARM_INT8_SCORE, (x86['top5'],
                                                        arm['top5'])
            # The C++ example computes what the Python runtime does.
            assert cpp['top5']['labels'] == arm['top5']['labels']
            np.testing.assert_allclose(
                cpp['top5']['scores'], arm['top5']['scores'], atol=1e-6)
        else:
            paired = paired_detections(x86['detections'], arm['detections'])
            print(f'int8 detector, arm vs x86: {paired["paired"]} of the '
                  f'{paired["considered"]} most confident paired')
            assert paired['share'] >= ARM_INT8_PAIRED
            # The C++ example computes what the Python runtime does.
            assert [d['label'] for d in cpp['detections']
                    ] == [d['label'] for d in arm['detections']]
            for key in ('bbox', 'score'):
                np.testing.assert_allclose([d[key] for d in cpp['detections']],
                                           [d[key] for d in arm['detections']],
                                           atol=1e-4)
