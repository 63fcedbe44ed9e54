"""SSDLite-EdgeFormer-S: the mmdet config, its neck and head."""
import math
import os.path as osp

import pytest
import torch
from mmdet.models.dense_heads import SSDHead
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from helpers import REPO

import edgeformer_mm  # noqa: F401  (registers the modules)
from edgeformer_mm.models import EdgeFormer, SSDLiteHead

CONFIG = osp.join(REPO, 'configs', 'mmdet', 'ssdlite_edgeformer_s_coco.py')
OFFICIAL_PARAMS = 5_197_282
# Official sizes at 320: encoder 4,292,408, extra layers 105,312, heads
# 799,562 of which 108,032 are the 1x1 projections that our neck holds.
# Our head has 14,080 more: the predictors' depthwise 3x3 conv and BN
# (11 weights a channel, 1280 channels over the first five levels) copied
# into mmdet's separate class and box branches.
PARAMS = dict(backbone=4_292_408, neck=105_312 + 108_032,
              bbox_head=799_562 - 108_032 + 14_080)
# Feature maps of the six levels at 320x320.
FEATMAP_SIZES = [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]


def num_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope='module', autouse=True)
def mmdet_scope():
    """mmdet's default scope for this module's tests, and only for them."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.fixture(scope='module')
def cfg():
    return Config.fromfile(CONFIG)


@pytest.fixture(scope='module')
def detector(cfg):
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def make_batch(height, width, batch_size=2, seed=0):
    """Random images in [0, 255] with two to three ground-truth boxes."""
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.rand(batch_size, 3, height, width, generator=gen) * 255
    samples = []
    for i in range(batch_size):
        num_gts = 2 + i
        xy = torch.rand(num_gts, 2, generator=gen) * torch.tensor(
            [width, height]) * 0.5
        wh = (torch.rand(num_gts, 2, generator=gen) * 0.4 + 0.1) * \
            torch.tensor([width, height])
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(height, width),
                pad_shape=(height, width),
                ori_shape=(height, width),
                scale_factor=(1., 1.)))
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], dim=1),
            labels=torch.randint(0, 80, (num_gts, ), generator=gen))
        samples.append(sample)
    return inputs, samples


def test_config_parameter_count_is_official_plus_the_copied_depthwise_convs(
        detector):
    total = num_params(detector)
    assert total == sum(PARAMS.values()) == 5_211_362
    assert abs(total - OFFICIAL_PARAMS) / OFFICIAL_PARAMS < 0.02
    for part, expected in PARAMS.items():
        assert num_params(getattr(detector, part)) == expected, part
    assert isinstance(detector.bbox_head, SSDLiteHead)
    assert detector.backbone.stage_names[-1] == 'layer5'
    # Official shapes: projections, the global level and its predictor,
    # 6 priors x (4 + 81) outputs split into cls and reg.
    neck, head = detector.neck, detector.bbox_head
    assert neck.input_projs[0].conv.weight.shape == (512, 128, 1, 1)
    assert neck.input_projs[1].conv.weight.shape == (256, 160, 1, 1)
    assert neck.extra_levels[0].depthwise_conv.conv.weight.shape == (160, 1,
                                                                     3, 3)
    assert neck.extra_levels[3][1].conv.weight.shape == (64, 128, 1, 1)
    assert neck.extra_levels[3][1].conv.bias is None
    assert head.cls_convs[0][1].weight.shape == (6 * 81, 512, 1, 1)
    assert head.reg_convs[0][1].weight.shape == (6 * 4, 512, 1, 1)
    assert len(head.cls_convs[5]) == 1
    assert head.cls_convs[5][0].weight.shape == (4 * 81, 64, 1, 1)
    assert head.reg_convs[5][0].weight.shape == (4 * 4, 64, 1, 1)
    # ReLU outside the backbone; the predictors' depthwise convs have none.
    assert not any(
        isinstance(m, torch.nn.SiLU)
        for m in list(neck.modules()) + list(head.modules()))
    assert not head.cls_convs[0][0].with_activation


def official_priors(input_size=320):
    """Priors by the official formula, in pixels, before clipping."""
    scales = [0.1 + 0.95 * i / 6 for i in range(7)]
    ratios = [[2, 3]] * 5 + [[2]]
    priors = []
    for level, (fh, fw) in enumerate(FEATMAP_SIZES):
        small = scales[level] * input_size
        big = math.sqrt(scales[level] * scales[level + 1]) * input_size
        shapes = [(small, small), (big, big)]
        for ratio in ratios[level]:
            shapes += [(small * math.sqrt(ratio), small / math.sqrt(ratio)),
                       (small / math.sqrt(ratio), small * math.sqrt(ratio))]
        for y in range(fh):
            for x in range(fw):
                cx = (x + 0.5) / fw * input_size
                cy = (y + 0.5) / fh * input_size
                priors += [[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
                           for w, h in shapes]
    return torch.tensor(priors)


def test_priors_and_feature_maps_at_320(detector):
    detector.eval()
    with torch.no_grad():
        feats = detector.extract_feat(torch.rand(1, 3, 320, 320))
    assert [tuple(f.shape[2:]) for f in feats] == FEATMAP_SIZES
    assert [f.shape[1] for f in feats] == [512, 256, 256, 128, 128, 64]

    generator = detector.bbox_head.prior_generator
    assert generator.num_base_priors == [6, 6, 6, 6, 6, 4]
    priors = generator.grid_priors(FEATMAP_SIZES, device='cpu')
    assert [len(p) for p in priors] == [2400, 600, 150, 54, 24, 4]
    priors = torch.cat(priors)
    assert len(priors) == 3232

    # Same centres, sizes and order as officially, except the boxes wider
    # or taller than the image, which the official code clips.
    expected = official_priors()
    torch.testing.assert_close(
        (priors[:, :2] + priors[:, 2:]) / 2,
        (expected[:, :2] + expected[:, 2:]) / 2,
        rtol=0, atol=1e-3)
    torch.testing.assert_close(
        priors[:, 2:] - priors[:, :2],
        expected[:, 2:] - expected[:, :2],
        rtol=0, atol=1e-3)
    oversized = ((expected[:, 2:] - expected[:, :2]) > 320).any(dim=1)
    # Level 4: the 2:1 and 3:1 boxes in both orientations on 4 locations;
    # level 5: the 2:1 boxes on its one location.
    assert oversized.sum() == 4 * 4 + 2
    assert oversized[:3232 - 4 - 24].sum() == 0


def test_loss_on_random_inputs(detector):
    detector.train()
    inputs, samples = make_batch(320, 320)
    losses = detector.loss(inputs / 255, samples)
    # One loss per image.
    assert {k: len(v) for k, v in losses.items()} == dict(
        loss_cls=2, loss_bbox=2)
    for loss in losses['loss_cls'] + losses['loss_bbox']:
        assert torch.isfinite(loss).all() and loss.item() > 0


def test_predict_on_random_inputs(detector):
    detector.eval()
    inputs, samples = make_batch(320, 320)
    with torch.no_grad():
        results = detector.predict(inputs / 255, samples)
    assert len(results) == 2
    for result in results:
        pred = result.pred_instances
        assert pred.bboxes.shape[1] == 4
        assert len(pred.bboxes) == len(pred.scores) == len(pred.labels)
        assert len(pred.bboxes) <= 200
        if len(pred.labels):
            assert 0 <= pred.labels.min() and pred.labels.max() < 80
            assert pred.scores.min() >= 0.01


def test_upstream_ssd_head_cannot_predict(cfg, detector):
    """mmdet's own SSDHead fails where SSDLiteHead predicts."""
    head_cfg = cfg.model.bbox_head.copy()
    head_cfg.type = 'mmdet.SSDHead'
    head_cfg.pop('plain_levels')
    upstream = MODELS.build(head_cfg).eval()
    assert type(upstream) is SSDHead
    detector.eval()
    with torch.no_grad():
        feats = detector.extract_feat(torch.rand(1, 3, 320, 320))
    metas = [dict(img_shape=(320, 320), scale_factor=(1., 1.))]
    with pytest.raises(AttributeError, match='loss_cls'):
        upstream.predict_by_feat(*upstream(feats), batch_img_metas=metas)
    results = detector.bbox_head.predict_by_feat(
        *detector.bbox_head(feats), batch_img_metas=metas)
    assert len(results) == 1 and results[0].bboxes.shape[1] == 4


@pytest.mark.parametrize('size', [(320, 416), (250, 333)])
def test_non_square_inputs(detector, size):
    height, width = size
    inputs, samples = make_batch(height, width, seed=1)
    detector.train()
    losses = detector.loss(inputs / 255, samples)
    assert all(torch.isfinite(sum(v)) for v in losses.values())
    detector.eval()
    with torch.no_grad():
        feats = detector.extract_feat(inputs / 255)
        results = detector.predict(inputs / 255, samples)
    assert feats[0].shape[2:] == (math.ceil(height / 16),
                                  math.ceil(width / 16))
    assert feats[-1].shape[2:] == (1, 1)
    for result in results:
        bboxes = result.pred_instances.bboxes
        # Boxes are clipped to the image.
        if len(bboxes):
            assert bboxes[:, 2].max() <= width and bboxes[:, 3].max() <= height


def save_classifier_checkpoint(path, arch='s', seed=1):
    """An EdgeFormer classifier's state dict, as mmpretrain saves it."""
    torch.manual_seed(seed)
    backbone = EdgeFormer(arch=arch)
    state_dict = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    width = backbone.stage_channels[-1]
    state_dict['head.fc.weight'] = torch.zeros(1000, width)
    state_dict['head.fc.bias'] = torch.zeros(1000)
    torch.save(dict(meta=dict(), state_dict=state_dict), path)
    return state_dict


def build_with_checkpoint(cfg, path):
    model_cfg = cfg.model.copy()
    model_cfg.backbone = dict(
        model_cfg.backbone,
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint=str(path)))
    return MODELS.build(model_cfg)


def test_pretrained_backbone_is_loaded(cfg, tmp_path):
    path = tmp_path / 'edgeformer-s.pth'
    state_dict = save_classifier_checkpoint(path)
    model = build_with_checkpoint(cfg, path)
    key = 'layer5.1.fuse.conv.weight'
    assert not torch.equal(model.backbone.state_dict()[key],
                           state_dict[f'backbone.{key}'])
    model.init_weights()
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(
            value, state_dict[f'backbone.{key}'], rtol=0, atol=0)


def test_missing_checkpoint_is_a_clear_error(cfg, tmp_path):
    path = tmp_path / 'missing.pth'
    model = build_with_checkpoint(cfg, path)
    with pytest.raises(FileNotFoundError,
                       match='missing.pth of this EdgeFormer-S backbone does '
                       'not exist: set the backbone.s init_cfg.checkpoint'):
        model.init_weights()


def test_checkpoint_without_backbone_keys_is_an_error(cfg, tmp_path):
    # E.g. an unconverted official checkpoint (keys 'encoder.*').
    path = tmp_path / 'official.pth'
    torch.save({'encoder.conv_1.block.conv.weight': torch.zeros(16, 3, 3,
                                                                3)}, path)
    model = build_with_checkpoint(cfg, path)
    with pytest.raises(AssertionError, match='backbone. is not in'):
        model.init_weights()


def test_mismatched_checkpoint_is_a_clear_error(cfg, tmp_path):
    # mmengine's Pretrained init would only log warnings and leave the
    # weights random; the backbone refuses an EdgeFormer-XS checkpoint.
    path = tmp_path / 'edgeformer-xs.pth'
    save_classifier_checkpoint(path, arch='xs')
    model = build_with_checkpoint(cfg, path)
    before = model.backbone.layer5[1].fuse.conv.weight.clone()
    with pytest.raises(ValueError) as error:
        model.init_weights()
    message = str(error.value)
    # XS and S differ in the ParC stages' widths and depths.
    assert ('does not fit this EdgeFormer-S: 258 weights of another '
            'shape, 70 missing, 0 unexpected') in message
    assert ('shape (96, 96, 1, 1) for layer3.1.local_proj.1.weight, '
            'expected (192, 192, 1, 1)') in message
    assert torch.equal(model.backbone.layer5[1].fuse.conv.weight, before)


def test_checkpoint_with_missing_backbone_weights_is_a_clear_error(
        cfg, tmp_path):
    path = tmp_path / 'partial.pth'
    state_dict = save_classifier_checkpoint(path)
    del state_dict['backbone.layer4.1.norm.weight']
    torch.save(dict(state_dict=state_dict), path)
    model = build_with_checkpoint(cfg, path)
    with pytest.raises(ValueError, match='missing: layer4.1.norm.weight'):
        model.init_weights()
