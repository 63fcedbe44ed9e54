"""The deployment on arm64, emulated with qemu on this x86 machine
(edgeformer_mm.deployment.emulation): the torch-free runtime and the C++
example (demo/cpp) run the real tiny bundles of the three tasks
(``tiny_bundles``) on photos, and must predict as the runtime does on x86.

ncnn in fp32 and ONNX Runtime agree with x86 within float rounding. ncnn
with its ARM defaults computes in fp16 (qemu's 'max' CPU has fp16
arithmetic), which moves the tiny classifier's scores by 0.01 to 0.14 on
scikit-image's photos: the two here are ones whose best class leads by
more (0.22 and 0.18; coffee's by 0.001), so that the top-1 check means
something. Everything skips, with the reason, only when qemu cannot be
installed; the first run sets the emulation up (10-20 minutes), later runs
reuse the cache. ``pytest -s`` prints the measured figures.
"""
import hashlib
import importlib.metadata
import json
import os.path as osp
import re
import shutil
import subprocess
import time

import cv2
import numpy as np
import pytest
from helpers import write_photo

from edgeformer_mm.deployment import compare_predictions
from edgeformer_mm.deployment.emulation import (RUNTIME_DIR, SETUP_SCRIPT,
                                                Arm64Emulation,
                                                EmulationUnavailable)
from edgeformer_runtime import Bundle, Predictor, preprocess

TASKS = ('classification', 'detection', 'segmentation')
# The RK3588's big core (ARMv8.2 with fp16 arithmetic). qemu's default,
# 'max', also emulates SVE, which makes ONNX Runtime ~10x slower here.
ARM_CPU = 'cortex-a76'
# Small (emulation is slow), non-square; (width, height).
PHOTOS = {'chelsea': (120, 80), 'rocket': (120, 80)}
# How the emulated runtime runs each bundle: (backend, Predictor's fp16).
MODES = {
    'ncnn-fp32': ('ncnn', False),
    'ncnn-arm-defaults': ('ncnn', True),
    'onnxruntime': ('onnxruntime', None),
    'mnn': ('mnn', None),
}
# Tolerances against x86, and the figures measured (pytest -s).
FP32 = dict(
    score=1e-5,  # class scores <= 2e-7, detection scores <= 4e-7
    box=1e-5,  # times the image's longer side (1.2e-3 px); <= 7.7e-6 px
    agreement=0.9999)  # 100%
FP16 = dict(
    score=0.05,  # class scores <= 0.021
    confident=0.5,  # x86 detections scoring this much (1 per photo):
    confident_box=1.5,  # <= 0.75 px
    confident_score=0.02,  # <= 0.006
    paired=0.9,  # share of x86 detections paired within 1 px: >= 0.96
    agreement=0.99)  # >= 0.995


@pytest.fixture(scope='module')
def emu():
    try:
        return Arm64Emulation.ensure()
    except EmulationUnavailable as error:
        pytest.skip(f'arm64 emulation unavailable: {error}')


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """PNG (decoded the same everywhere, unlike JPEG) photos by name."""
    root = tmp_path_factory.mktemp('photos')
    paths = {}
    for name, size in PHOTOS.items():
        image = cv2.imread(write_photo(name, root / f'{name}_full.png'))
        paths[name] = str(root / f'{name}.png')
        cv2.imwrite(paths[name],
                    cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    return paths


def x86_prediction(bundle_dir, image):
    return Predictor(bundle_dir, num_threads=1)(image)


# ---- the emulated Python environment ----


@pytest.mark.slow
def test_emulated_python_is_aarch64_with_the_x86_versions(emu):
    code = ('import json, platform, importlib.metadata as m, cv2; '
            'print(json.dumps(dict(machine=platform.machine(), '
            'cv2=cv2.__version__, **{n: m.version(n) for n in '
            '("numpy", "ncnn", "onnxruntime", "mnn")})))')
    got = json.loads(emu.python(['-c', code]).stdout)
    assert got['machine'] == 'aarch64'
    for name in ('numpy', 'ncnn', 'onnxruntime', 'mnn'):
        assert got[name] == importlib.metadata.version(name), name
    assert got['cv2'] == cv2.__version__


@pytest.mark.slow
def test_setup_rerun_reuses_the_cache(emu):
    start = time.monotonic()
    proc = subprocess.run(['bash', SETUP_SCRIPT],
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count('] reuse ') == 3, proc.stdout
    assert time.monotonic() - start < 60
    assert Arm64Emulation.paths() == emu


# ---- the Python runtime ----

# Runs every job in one emulated process (each start costs seconds):
# argv: jobs.json ([key, bundle, fp16, images]), the output .json.
RUN_ON_ARM = r'''
import json, sys
from edgeformer_runtime import Bundle, Predictor, preprocess
jobs, out = json.load(open(sys.argv[1])), sys.argv[2]
results = {}
for key, bundle, fp16, images in jobs:
    predictor = Predictor(bundle, num_threads=1, fp16=fp16)
    for name, image in images.items():
        result = predictor(image)
        for array in ('pred_scores', 'label_map'):
            if array in result:
                result[array] = result[array].tolist()
        results[f'{key} {name}'] = result
json.dump(results, open(out, 'w'))
'''


def pair_detections(expected, actual):
    """Pair each expected detection (best first) with the unpaired actual
    one of its label whose box is nearest; per expected detection, the
    largest box coordinate difference and the score difference (inf
    without a partner)."""
    unpaired = list(actual)
    pairs = []
    for det in expected:
        same = [a for a in unpaired if a['label'] == det['label']]
        if not same:
            pairs.append((np.inf, np.inf))
            continue
        dist = [
            np.abs(np.subtract(a['bbox'], det['bbox'])).max() for a in same
        ]
        partner = same[int(np.argmin(dist))]
        unpaired.remove(partner)
        pairs.append((min(dist), abs(partner['score'] - det['score'])))
    return np.array(pairs).reshape(-1, 2)


def check(task, mode, expected, actual, image_size):
    """How far ``actual`` (emulated arm64) is from ``expected`` (x86), and
    whether that is within the tolerances of ``mode``."""
    limits = FP16 if mode == 'ncnn-arm-defaults' else FP32
    if task == 'classification':
        figures = dict(
            same_top1=actual['pred_label'] == expected['pred_label'],
            score=np.abs(
                np.subtract(actual['pred_scores'],
                            expected['pred_scores'])).max())
        return figures, (
            figures['same_top1'] and figures['score'] <= limits['score'])
    if task == 'segmentation':
        label_map = np.asarray(actual['label_map'], np.uint8)
        agreement = ((label_map == expected['label_map']).mean()
                     if label_map.shape == expected['label_map'].shape else 0.)
        return dict(agreement=agreement), agreement >= limits['agreement']
    expected, actual = expected['detections'], actual['detections']
    pairs = pair_detections(expected, actual)
    figures = dict(expected=len(expected), actual=len(actual))
    if limits is FP32:
        box, score = pairs.max(axis=0, initial=0)
        figures.update(box=box, score=score)
        return figures, (
            len(expected) == len(actual) > 0
            and box <= limits['box'] * max(image_size)
            and score <= limits['score'])
    confident = np.array([d['score'] >= limits['confident'] for d in expected])
    box, score = pairs[confident].max(axis=0, initial=0)
    figures.update(
        confident=confident.sum(),
        confident_box=box,
        confident_score=score,
        paired_1px=(pairs[:, 0] <= 1).mean())
    return figures, (
        confident.any() and box <= limits['confident_box']
        and score <= limits['confident_score']
        and figures['paired_1px'] >= limits['paired'])


@pytest.mark.slow
def test_runtime_on_arm_matches_x86(emu, tiny_bundles, photos, tmp_path):
    jobs = [[f'{task} {mode}',
             tiny_bundles(task, backend)[0], fp16, photos] for task in TASKS
            for mode, (backend, fp16) in MODES.items()]
    (tmp_path / 'jobs.json').write_text(json.dumps(jobs))
    start = time.monotonic()
    args = [str(tmp_path / 'jobs.json'), str(tmp_path / 'arm.json')]
    emu.python(['-c', RUN_ON_ARM, *args],
               pythonpath=[emu.site, RUNTIME_DIR],
               timeout=1200,
               cpu=ARM_CPU)
    print(f'\n{len(jobs) * len(photos)} emulated predictions in '
          f'{time.monotonic() - start:.0f} s')
    arm = json.loads((tmp_path / 'arm.json').read_text())
    failed = []
    for key, bundle_dir, _, _ in jobs:
        task, mode = key.split()
        for name, image in photos.items():
            figures, passed = check(task, mode,
                                    x86_prediction(bundle_dir, image),
                                    arm[f'{key} {name}'], PHOTOS[name])
            line = f'{key} {name}: ' + ', '.join(
                f'{k} {v}' if isinstance(v, bool) else f'{k} {v:.3g}'
                for k, v in figures.items())
            print(line)
            if not passed:
                failed.append(line)
    assert not failed, failed


# ---- the C++ example ----


@pytest.fixture(scope='module')
def cpp_exe(emu):
    return emu.build_cpp()


@pytest.mark.slow
def test_cpp_example_reports_bad_input(emu, cpp_exe, tiny_bundles, photos):
    proc = emu.run(cpp_exe, [], check=False)
    assert proc.returncode == 2 and proc.stderr.startswith('usage:')
    proc = emu.run(cpp_exe, ['/nonexistent', photos['chelsea']], check=False)
    assert proc.returncode == 1 and 'bundle.json' in proc.stderr
    bundle_dir = tiny_bundles('classification', 'ncnn')[0]
    proc = emu.run(cpp_exe, [bundle_dir, '/nonexistent.png'], check=False)
    assert proc.returncode == 1 and 'cannot read image' in proc.stderr


def edited_copy(bundle_dir, copy, postprocess=(), param=None):
    """A copy of a bundle with entries of ``postprocess`` changed and the
    function ``param`` applied to the text of end2end.param."""
    shutil.copytree(bundle_dir, copy)
    manifest = json.loads((copy / 'bundle.json').read_text())
    manifest['postprocess'].update(postprocess)
    if param:
        path = copy / 'end2end.param'
        path.write_text(param(path.read_text()))
        manifest['files'][path.name] = dict(
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            bytes=path.stat().st_size)
    (copy / 'bundle.json').write_text(json.dumps(manifest))
    return str(copy)


def keep_nothing(param):
    """DetectionOutput with confidence threshold 2: an empty ``detections``
    blob."""
    text, count = re.subn(
        r'^(DetectionOutput .*) 4=\S+', r'\1 4=2', param, flags=re.M)
    assert count == 1
    return text


@pytest.mark.slow
def test_cpp_example_on_arm_matches_python(emu, cpp_exe, tiny_bundles, photos,
                                           tmp_path):
    """The C++ example on arm64 (the bundles are fp32: ncnn forced to fp32)
    against the Python runtime on x86, within the tolerances of bundles
    against PyTorch (compare_predictions)."""
    image = photos['chelsea']
    detection = tiny_bundles('detection', 'ncnn')[0]
    cases = [(task, tiny_bundles(task, 'ncnn')[0]) for task in TASKS]
    # min_bbox_size 10 drops 96 of the 200 boxes (the smallest is 4.6 px).
    cases.append(('detection',
                  edited_copy(detection, tmp_path / 'min_size',
                              dict(min_bbox_size=10))))
    for task, bundle_dir in cases:
        out, dump = str(tmp_path / f'{task}.png'), str(tmp_path / 'input')
        got = json.loads(
            emu.run(cpp_exe, [
                bundle_dir, image, '--threads', '1', '--out', out,
                '--dump-input', dump
            ]).stdout)
        # The network input is the x86 runtime's, bit for bit.
        x = preprocess(image, Bundle.load(bundle_dir).preprocess).input
        np.testing.assert_array_equal(
            np.fromfile(dump, np.float32).reshape(x.shape), x)
        expected = x86_prediction(bundle_dir, image)
        if task == 'segmentation':
            assert got == dict(task=task, out=out, shape=[80, 120])
            got['label_map'] = cv2.imread(out, cv2.IMREAD_UNCHANGED)
        elif task == 'classification':
            assert got['pred_label'] == expected['pred_label']
        else:
            assert 0 < len(got['detections']) == len(expected['detections'])
            assert all('class' in det for det in got['detections'])
        figures = compare_predictions(
            expected, got,
            dict(
                score=1e-5 if task == 'classification' else 1e-4,
                box=0.01,
                agreement=0.999))
        assert figures.pop('passed'), figures
        print(f'\nC++ {task} ({osp.basename(bundle_dir)}): {figures}')

    # No detections (an empty blob).
    bundle_dir = edited_copy(detection, tmp_path / 'none', param=keep_nothing)
    got = json.loads(emu.run(cpp_exe, [bundle_dir, image]).stdout)
    assert got == dict(task='detection', detections=[])
    assert x86_prediction(bundle_dir, image)['detections'] == []
