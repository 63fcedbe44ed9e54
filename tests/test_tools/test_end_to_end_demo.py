"""The main job (`make demo`: tools/end_to_end_demo.py) in its quick mode:
every step, the deployment included, on small generated data, so that the
README's first command cannot break unnoticed."""
import os.path as osp
import re

import cv2
import pytest
from helpers import run_script

from edgeformer_mm.deployment import Arm64Emulation


@pytest.mark.slow
def test_every_step_runs(tmp_path):
    work_dir = tmp_path / 'demo'
    result = run_script('tools/end_to_end_demo.py', '--quick', '--work-dir',
                        work_dir, '--shape', 64, 96, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout

    # 1. The figures: parameters and MACs equal to the official models'.
    for arch, params, macs in (('xs', '2,185,384', '944.0M'),
                               ('s', '5,037,088', '1657.3M'),
                               ('h', '20,403,940', '8544.4M')):
        assert re.search(rf'^{arch} +{params} +{params} +{macs} +{macs}$',
                         out, re.M), out[:2000]
    assert 'Feature shapes (C, H, W) at a 64x96 input' in out

    # 2.-4. Three trainings, each evaluated before and after, each with its
    # picture; the small sets went to the work dir, not to ./data.
    assert re.search(r'top-1 before training: +[\d.]+%', out)
    assert re.search(r'top-1 after training: +[\d.]+%', out)
    assert len(re.findall(r'training: +bbox mAP [\d.]+, mAP@0.5', out)) == 2
    assert len(re.findall(r'training: +mIoU \(%\) [\d.]+', out)) == 2
    for picture in ('classification', 'detection', 'segmentation'):
        assert cv2.imread(str(work_dir / f'{picture}_demo.png')) is not None
    assert osp.isdir(work_dir / 'data' / 'tiny_voc')
    assert not osp.exists(tmp_path / 'data')

    # 5. Six deployments, each checked against PyTorch and timed.
    checks = re.findall(r'^  (onnxruntime|ncnn) vs PyTorch on ', out, re.M)
    assert sorted(checks) == ['ncnn'] * 3 + ['onnxruntime'] * 3, out[-3000:]
    assert len(re.findall(r'^  latency at ', out, re.M)) == 6

    # 6. The six bundles run by the torch-free command, checked against
    # PyTorch, and on emulated aarch64 against x86 where that is set up.
    runs = re.findall(r'^  edgeformer-run vs PyTorch: ', out, re.M)
    assert len(runs) == 6, out[-3000:]
    if Arm64Emulation.paths().is_ready():
        assert len(re.findall(r'^  emulated aarch64 \(cortex-a76\) vs x86: ', out,
                              re.M)) == 6, out[-3000:]
