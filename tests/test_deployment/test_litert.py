"""LiteRT models from litert-torch (edgeformer_mm.deployment.litert) against
PyTorch, for the tiny EdgeFormer-XS models of the three tasks (calibrated
random weights, deploy mode): classification at 64x64, segmentation and
SSDLite detection at 128x128.

They need the opt-in LiteRT environment: ``bash tools/setup_litert.sh``,
then ``.venv-litert/bin/python -m pytest tests/test_deployment/test_litert.py``
(each conversion takes 30-70 s on 2 cores: marked slow)."""
import copy
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from helpers import REPO, calibrate

from edgeformer_mm.deployment import (difference, label_agreement,
                                      match_detections)
from edgeformer_mm.utils import build_model

REASON = 'the LiteRT extra is not installed: bash tools/setup_litert.sh'
pytest.importorskip('litert_torch', reason=REASON)
pytest.importorskip('ai_edge_litert', reason=REASON)

from edgeformer_mm.deployment.bundle import TASK_NAMES  # noqa: E402
from edgeformer_mm.deployment.litert import (  # noqa: E402
    LiteRTGraph, LiteRTNotInstalledError, export_litert)
from edgeformer_runtime.backends import LiteRTModel  # noqa: E402
from edgeformer_runtime.bundle import OUTPUTS  # noqa: E402

# task -> (tiny model config, input size), as conftest.TINY_MODELS
CASES = {
    'Classification':
    ('configs/mmpretrain/edgeformer/edgeformer-xs_1xb32_tiny-shapes.py', 64),
    'Segmentation': ('configs/mmseg/deeplabv3_edgeformer_xs_tiny-voc.py', 128),
    'ObjectDetection':
    ('configs/mmdet/ssdlite_edgeformer_xs_tiny-coco.py', 128),
}
# test_parity.py's tolerances: relative to the largest expected magnitude;
# boxes in input pixels, scores.
REL_TOLERANCE = 1e-4
BOX_TOLERANCE = 1e-2
SCORE_TOLERANCE = 1e-4


@pytest.fixture(scope='module', params=list(CASES))
def converted(request, tmp_path_factory):
    """(task, deploy-mode model, input, PyTorch outputs by name, runner)."""
    task = request.param
    config, size = CASES[task]
    torch.manual_seed(0)
    model = calibrate(build_model(osp.join(REPO, config))).eval()
    model.backbone.switch_to_deploy((size, size))
    path = str(tmp_path_factory.mktemp('litert') / f'{task}.tflite')
    assert export_litert(model, task, (size, size), path) == [path]
    # Only the model: the temporary file was renamed.
    assert os.listdir(osp.dirname(path)) == [osp.basename(path)]
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected = LiteRTGraph(model, task).eval()(x)
    return task, model, x, expected, LiteRTModel(path, num_threads=1)


@pytest.mark.slow
def test_names_and_shapes(converted):
    task, _, x, expected, runner = converted
    assert runner.input_names == ['input']
    names = OUTPUTS[TASK_NAMES[task], 'litert']
    assert runner.output_names == names
    actual = runner(x.numpy())
    assert list(actual) == list(expected) == names
    for name, value in expected.items():
        assert actual[name].shape == tuple(value.shape), name
        assert actual[name].dtype == np.float32, name


@pytest.mark.slow
def test_matches_pytorch(converted):
    task, model, x, expected, runner = converted
    actual = {k: torch.from_numpy(v) for k, v in runner(x.numpy()).items()}
    if task == 'ObjectDetection':
        assert difference(expected['boxes'], actual['boxes'])['abs'] \
            <= BOX_TOLERANCE
        assert difference(expected['scores'], actual['scores'])['abs'] \
            <= SCORE_TOLERANCE
        return
    parity = difference(expected['output'], actual['output'])
    assert parity['rel'] <= REL_TOLERANCE, parity
    if task == 'Classification':
        assert actual['output'].shape == (1, model.head.fc.out_features)
        assert torch.allclose(actual['output'].sum(), torch.tensor(1.))
    else:
        assert actual['output'].shape[2:] == x.shape[2:]
        assert label_agreement(expected['output'], actual['output']) >= 0.999


def host_detections(boxes, scores, cfg):
    """Detections in input pixels from ``boxes`` (P, 4) and ``scores``
    (P, C), as mmdet's head gives them when ``nms_pre`` does not bind:
    the (box, class) pairs above ``score_thr``, per-class NMS, the best
    ``max_per_img``."""
    from mmcv.ops import batched_nms
    from mmengine.structures import InstanceData

    index, labels = (scores > cfg.score_thr).nonzero(as_tuple=True)
    dets, keep = batched_nms(boxes[index], scores[index, labels], labels,
                             cfg.nms)
    keep = keep[:cfg.max_per_img]
    results = InstanceData()
    results.bboxes = dets[:len(keep), :4]
    results.scores = dets[:len(keep), 4]
    results.labels = labels[keep]
    return results


@pytest.mark.slow
def test_detections_match_mmdet(converted):
    task, model, x, _, runner = converted
    if task != 'ObjectDetection':
        pytest.skip('detection only')
    head = copy.deepcopy(model.bbox_head)
    head.test_cfg.nms_pre = 10**6  # all pairs, as host_detections
    size = tuple(x.shape[2:])
    meta = dict(img_shape=size, ori_shape=size, scale_factor=(1., 1.))
    with torch.no_grad():
        expected = head.predict_by_feat(
            *model(x, mode='tensor'), batch_img_metas=[meta], rescale=False)[0]
    outputs = runner(x.numpy())
    actual = host_detections(
        torch.from_numpy(outputs['boxes'][0]),
        torch.from_numpy(outputs['scores'][0]), head.test_cfg)
    parity = match_detections(expected, actual)
    assert parity['expected'] > 0 and parity['unmatched'] == 0, parity
    assert parity['box'] <= BOX_TOLERANCE, parity
    assert parity['score'] <= SCORE_TOLERANCE, parity


def test_missing_extra_names_the_setup(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, 'litert_torch', None)
    with pytest.raises(LiteRTNotInstalledError, match='setup_litert.sh'):
        export_litert(torch.nn.Identity(), 'Classification', (8, 8),
                      str(tmp_path / 'model.tflite'))
    assert not os.listdir(tmp_path)
