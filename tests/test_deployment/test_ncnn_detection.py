"""ncnn detection graphs that end in ncnn's DetectionOutput layer
(``detections``: rows [label, score, x1, y1, x2, y2], labels from 1, boxes
in input pixels) against mmdet's own decoding and NMS, on scikit-image
photos at three input sizes (non-square ones included).

Two models: the tiny SSDLite config with calibrated random weights, run as
tools/deploy.py does (mmdeploy's inputs, NcnnRunner against the PyTorch
model's test_step); and its real head (priors, box coder, test_cfg) on maps
computed from the photo by fixed random 1x1 convolutions, for which the
post-processing is stressed (scores spread out, hundreds of detections down
to score_thr, boxes clipped to the border and degenerate, the size ratio
clamp) and compared with the head's predict_by_feat on the same maps."""
import copy
import math
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import REPO, write_photo
from mmengine.config import Config
from torch import nn

from edgeformer_mm.deployment import (NcnnRunner, convert_to_ncnn,
                                      match_detections)
from edgeformer_mm.deployment.ncnn import (DETECTIONS, FP32_ONLY,
                                           append_detection_output,
                                           detections_to_instances)
from edgeformer_mm.utils import build_model

pytest.importorskip('ncnn', reason='the ncnn runtime is not installed')
pytest.importorskip('pnnx', reason='the pnnx converter is not installed')
pytest.importorskip(
    'skimage', reason='scikit-image (the test photos) is not installed')

TINY_CFG = osp.join(REPO, 'configs/mmdet/ssdlite_edgeformer_xs_tiny-coco.py')
DEPLOY_CFG = osp.join(REPO,
                      'configs/mmdeploy/detection_ncnn_static-128x128.py')
PHOTOS = ('astronaut', 'coffee', 'chelsea')
SIZES = [(128, 128), (96, 160), (160, 112)]  # (height, width)
# The tolerances, ncnn in fp32: boxes in the original image's
# pixels, scores.
BOX_TOLERANCE = 0.01
SCORE_TOLERANCE = 1e-4


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp('photos')
    return [write_photo(name, root / f'{name}.jpg') for name in PHOTOS]


def assert_same_detections(expected, actual, scale_factor, where):
    """Every detection paired with one of the same label, boxes within
    BOX_TOLERANCE px in the original image (and so at the input, where the
    photos are larger than the input), scores within SCORE_TOLERANCE."""
    for frame, factor in [('original', (1., 1.)), ('input', scale_factor)]:
        parity = match_detections(expected, actual, factor)
        assert parity['expected'] > 0, where
        assert parity['unmatched'] == 0, (where, frame, parity)
        assert parity['box'] <= BOX_TOLERANCE, (where, frame, parity)
        assert parity['score'] <= SCORE_TOLERANCE, (where, frame, parity)


# ---- the .param file ------------------------------------------------------

# A network whose last weight layer is conv1; the post-processing after it
# (and the MemoryData it uses) ends in DetectionOutput's three inputs.
PARAM = '''7767517
9 11
Input input 0 1 input
Convolution conv0 1 1 input x 0=8 1=1 6=24
Split split 1 2 x x0 x1
Convolution conv1 1 1 x0 y 0=8 1=1 6=64
MemoryData priors 0 1 p 0=8
BinaryOp add 2 1 y p s 0=0
Split split2 1 2 s mbox_loc s1
Sigmoid sigmoid 1 1 x1 mbox_conf
UnaryOp abs 1 1 s1 mbox_priorbox 0=0
'''


def test_detection_output_is_appended_after_an_fp32_post_processing(tmp_path):
    import ncnn

    param = tmp_path / 'model.param'
    param.write_text(PARAM)
    line = ('DetectionOutput detection_output 3 1 mbox_loc mbox_conf '
            'mbox_priorbox detections 0=5 1=0.5 2=1000 3=200 4=0.01')
    append_detection_output(str(param), line)
    lines = param.read_text().splitlines()
    # The blobs that enter the post-processing from fp16-capable layers
    # first go through a DeepCopy (ncnn converts fp16 blobs to fp32 for it,
    # not for a layer whose mask disables fp16 storage).
    assert lines[1] == '12 14'
    masked = {text.split()[1] for text in lines if f' 31={FP32_ONLY}' in text}
    assert masked == {'priors', 'add', 'split2', 'sigmoid', 'abs'}
    layers = {text.split()[1]: text for text in lines[2:]}
    assert layers['y_fp32'] == 'DeepCopy y_fp32 1 1 y y_fp32'
    assert layers['x1_fp32'] == 'DeepCopy x1_fp32 1 1 x1 x1_fp32'
    assert layers['add'].split()[4:6] == ['y_fp32', 'p']
    assert layers['sigmoid'].split()[4] == 'x1_fp32'
    assert lines[-1] == line
    # DeepCopies stand before the layers that use them.
    names = [text.split()[1] for text in lines[2:]]
    assert names.index('y_fp32') < names.index('add')
    assert names.index('x1_fp32') < names.index('sigmoid')
    net = ncnn.Net()
    assert net.load_param(str(param)) == 0


def test_detections_are_rescaled_with_labels_from_zero():
    rows = torch.tensor([[2., .75, 10., 20., 30., 40.],
                         [1., .5, 0., 0., 128., 64.]])
    meta = dict(img_shape=(64, 128), scale_factor=(0.5, 0.25))
    result = detections_to_instances(rows, meta, (64, 128))
    assert result.labels.tolist() == [1, 0]
    assert result.scores.tolist() == [.75, .5]
    assert result.bboxes.tolist() == [[20., 80., 60., 160.],
                                      [0., 0., 256., 256.]]
    empty = detections_to_instances(torch.zeros(0, 6), meta, (64, 128))
    assert len(empty) == 0 and empty.bboxes.shape == (0, 4)


def test_detections_refuse_an_image_smaller_than_the_input():
    # mmdet clips to img_shape, the graph to the whole input.
    meta = dict(img_shape=(60, 128), scale_factor=(1., 1.))
    with pytest.raises(ValueError, match='clips the boxes'):
        detections_to_instances(torch.zeros(0, 6), meta, (64, 128))


# ---- the head's post-processing on maps from the photos -------------------


class PhotoMaps(nn.Module):
    """A detector whose head maps are fixed random 1x1 convolutions of the
    image max-pooled to each level's size (``head``'s strides), so that
    they depend on the photo; ``head`` gives the priors, box coder and
    test_cfg.

    The class logits are spread out with the background (the last class)
    favoured: hundreds of (prior, class) pairs above score_thr, fewer than
    nms_pre on every level; a fixed random offset per position keeps
    uniform regions of a photo from giving equal scores (whose order is
    arbitrary). The box deltas are large: many boxes leave the input
    (clipped, some to nothing) and their size ratio is clamped.
    """

    def __init__(self,
                 head,
                 cls_gain=4.,
                 spread=2.5,
                 box_gain=25.,
                 background=3.):
        super().__init__()
        self.bbox_head = head
        self.spread = spread
        generator = torch.Generator().manual_seed(0)
        self.cls_convs, self.reg_convs = nn.ModuleList(), nn.ModuleList()
        for priors in head.num_base_priors:
            cls = nn.Conv2d(3, priors * head.cls_out_channels, 1)
            reg = nn.Conv2d(3, priors * 4, 1)
            with torch.no_grad():
                for conv, gain in [(cls, cls_gain), (reg, box_gain)]:
                    conv.weight.copy_(
                        torch.randn(conv.weight.shape, generator=generator) *
                        gain)
                    conv.bias.copy_(
                        torch.randn(conv.bias.shape, generator=generator))
                cls.bias.view(priors, -1)[:, -1] += background
            self.cls_convs.append(cls)
            self.reg_convs.append(reg)

    def forward(self, x, mode='tensor'):
        height, width = x.shape[2:]
        cls_scores, bbox_preds = [], []
        for level, ((stride_w, stride_h), cls, reg) in enumerate(
                zip(self.bbox_head.prior_generator.strides, self.cls_convs,
                    self.reg_convs)):
            size = (math.ceil(height / stride_h), math.ceil(width / stride_w))
            pooled = F.adaptive_max_pool2d(x, size) - 0.5
            offsets = self.spread * torch.randn(
                (cls.out_channels, *size),
                generator=torch.Generator().manual_seed(level))
            cls_scores.append(cls(pooled) + offsets)
            bbox_preds.append(reg(pooled))
        return cls_scores, bbox_preds


def photo_input(photo, height, width):
    """The photo resized to (height, width) as the tiny config's test
    pipeline and preprocessor make it (BGR / 255), and its image meta."""
    image = cv2.imread(photo)
    resized = cv2.resize(image, (width, height))
    x = torch.from_numpy(resized).permute(2, 0, 1)[None].float() / 255
    meta = dict(
        img_shape=(height, width),
        ori_shape=image.shape[:2],
        scale_factor=(width / image.shape[1], height / image.shape[0]))
    return x, meta


def stress(head, cls_scores, bbox_preds, height, width):
    """How much of the post-processing the maps use: the largest count of
    (prior, class) pairs above score_thr on a level, the degenerate boxes
    (clipped to nothing) among those with such a pair, the clamped size
    ratios."""
    cfg = head.test_cfg
    priors = head.prior_generator.grid_priors(
        [score.shape[-2:] for score in cls_scores], device='cpu')
    most = degenerate = clamped = 0
    for score, pred, level_priors in zip(cls_scores, bbox_preds, priors):
        scores = score[0].permute(1, 2, 0).reshape(
            -1, head.cls_out_channels).softmax(-1)[:, :-1]
        deltas = pred[0].permute(1, 2, 0).reshape(-1, 4)
        boxes = head.bbox_coder.decode(
            level_priors, deltas, max_shape=(height, width))
        candidate = scores > cfg.score_thr
        most = max(most, int(candidate.sum()))
        empty = ((boxes[:, 2:] - boxes[:, :2]) <= 0).any(1)
        degenerate += int((empty & candidate.any(1)).sum())
        stds = deltas.new_tensor(head.bbox_coder.stds[2:])
        clamped += int(((deltas[:, 2:] * stds).abs()
                        > abs(math.log(16 / 1000))).sum())
    return most, degenerate, clamped


@pytest.mark.slow
@pytest.mark.parametrize(
    'max_per_img', [None, 2000], ids=['test_cfg', 'all-detections'])
def test_post_processing_matches_mmdet(photos, tmp_path, max_per_img):
    model = PhotoMaps(build_model(TINY_CFG).bbox_head).eval()
    head = model.bbox_head
    if max_per_img:
        # Every detection down to score_thr: the whole NMS is compared.
        head.test_cfg.max_per_img = max_per_img
    totals = np.zeros(3, dtype=int)
    for height, width in SIZES:
        files = convert_to_ncnn(model, 'ObjectDetection', (height, width),
                                str(tmp_path / f'{height}x{width}'))
        runner = NcnnRunner(model, 'ObjectDetection', *files)
        for photo in photos:
            where = (osp.basename(photo), height, width)
            x, meta = photo_input(photo, height, width)
            with torch.no_grad():
                maps = model(x)
                expected = head.predict_by_feat(
                    *maps, batch_img_metas=[meta], rescale=True)[0]
            most, degenerate, clamped = stress(head, *maps, height, width)
            # mmdet's nms_pre (per level) and ncnn's nms_top_k (per class)
            # never bind here: the detections are the same.
            assert most <= head.test_cfg.nms_pre, where
            totals += [len(expected), degenerate, clamped]
            rows = runner(x)[DETECTIONS][0]
            assert rows.shape[1] == 6, where
            actual = detections_to_instances(rows, meta, (height, width))
            assert_same_detections(expected, actual, meta['scale_factor'],
                                   where)
            if max_per_img:
                assert len(expected) < max_per_img, where
            else:
                assert len(expected) == head.test_cfg.max_per_img, where
    detections, degenerate, clamped = totals
    assert detections > 1000 and degenerate > 50 and clamped > 50, totals


@pytest.mark.slow
def test_nothing_detected_is_an_empty_blob(photos, tmp_path):
    model = PhotoMaps(build_model(TINY_CFG).bbox_head).eval()
    model.bbox_head.test_cfg.score_thr = 1.  # no softmax score is above
    files = convert_to_ncnn(model, 'ObjectDetection', (128, 128),
                            str(tmp_path / 'model'))
    x, meta = photo_input(photos[0], 128, 128)
    rows = NcnnRunner(model, 'ObjectDetection', *files)(x)[DETECTIONS][0]
    assert rows.shape == (0, 6)
    assert len(detections_to_instances(rows, meta, (128, 128))) == 0


# ---- the tiny detector as tools/deploy.py runs it -------------------------


@pytest.mark.slow
def test_tiny_detector_matches_pytorch(calibrated_checkpoint, photos,
                                       tmp_path):
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import load_config

    deploy_cfg, model_cfg = load_config(DEPLOY_CFG, Config.fromfile(TINY_CFG))
    processor = build_task_processor(model_cfg, deploy_cfg, 'cpu')
    torch_model = processor.build_pytorch_model(
        calibrated_checkpoint(TINY_CFG))
    for height, width in SIZES:
        deployed = copy.deepcopy(torch_model)
        deployed.backbone.switch_to_deploy((height, width))
        files = convert_to_ncnn(deployed, 'ObjectDetection', (height, width),
                                str(tmp_path / f'{height}x{width}'))
        with open(files[0]) as f:
            last = f.read().splitlines()[-1].split()
        assert last[:4] == ['DetectionOutput', 'detection_output', '3', '1']
        assert last[4:8] == [
            'mbox_loc', 'mbox_conf', 'mbox_priorbox', DETECTIONS
        ]
        runner = NcnnRunner(torch_model, 'ObjectDetection', *files)
        for photo in photos:
            where = (osp.basename(photo), height, width)
            inputs, _ = processor.create_input(photo, [width, height])
            # as task_parity (tools/deploy.py) runs them
            with torch.no_grad():
                expected = torch_model.test_step(copy.deepcopy(inputs))[0]
                actual = runner.test_step(copy.deepcopy(inputs))[0]
            assert_same_detections(expected.pred_instances,
                                   actual.pred_instances,
                                   expected.scale_factor, where)


# ---- fp16 on ARM (emulated) -----------------------------------------------

RUN_FP16 = r'''
import sys
import numpy as np
import ncnn
param, x_file, out = sys.argv[1:4]
result = {}
for fp16 in (False, True):
    net = ncnn.Net()
    net.opt.num_threads = 1
    for option in ('use_fp16_storage', 'use_fp16_packed',
                   'use_fp16_arithmetic'):
        setattr(net.opt, option, fp16)
    assert net.load_param(param) == 0
    assert net.load_model(param[:-len('.param')] + '.bin') == 0
    for name in ('mbox_priorbox', 'detections'):
        extractor = net.create_extractor()
        extractor.input('input', ncnn.Mat(np.load(x_file)))
        status, mat = extractor.extract(name)
        assert status == 0, name
        result[f'{name}_{int(fp16)}'] = np.array(mat)
np.savez(out, **result)
'''


@pytest.mark.slow
def test_fp16_arm_keeps_the_post_processing_in_fp32(photos, tmp_path):
    """On ARMv8.2 ncnn stores blobs in fp16 by default: the decoded boxes
    reach DetectionOutput unrounded (without the DeepCopy before the masked
    layers, ncnn would hand them fp16 blobs as fp32 and crash)."""
    emulation = pytest.importorskip('edgeformer_mm.deployment.emulation')
    try:
        emu = emulation.Arm64Emulation.paths()
    except emulation.EmulationUnavailable as error:
        pytest.skip(f'arm64 emulation unavailable: {error}')
    if not emu.is_ready():
        pytest.skip('arm64 emulation is not set up '
                    '(tools/setup_arm64_emulation.sh)')
    model = PhotoMaps(build_model(TINY_CFG).bbox_head).eval()
    files = convert_to_ncnn(model, 'ObjectDetection', (128, 128),
                            str(tmp_path / 'model'))
    x, _ = photo_input(photos[0], 128, 128)
    np.save(tmp_path / 'x.npy', x[0].numpy())
    (tmp_path / 'run.py').write_text(RUN_FP16)
    emu.python([
        str(tmp_path / 'run.py'), files[0],
        str(tmp_path / 'x.npy'),
        str(tmp_path / 'out.npz')
    ])
    out = np.load(tmp_path / 'out.npz')
    boxes = out['mbox_priorbox_1'][0]
    # fp16 would leave every box coordinate on the fp16 grid
    off_grid = boxes != boxes.astype(np.float16).astype(np.float32)
    assert off_grid.mean() > 0.5
    fp32, fp16 = out['detections_0'], out['detections_1']
    assert len(fp32) > 0 and abs(len(fp16) - len(fp32)) <= len(fp32) // 20
