"""DeepLabV3-EdgeFormer: the mmseg configs, the head and the segmentor.

The backbone's ``output_stride`` is tested in test_edgeformer.py.
"""
import os.path as osp
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from helpers import REPO

import edgeformer_mm  # noqa: F401  (registers the modules)
from edgeformer_mm.models import DeepLabV3Head, EdgeFormer

CONFIGS = osp.join(REPO, 'configs', 'mmseg')
VOC = osp.join(CONFIGS, 'deeplabv3_edgeformer_s_voc12aug-512x512.py')
VOC_OS8 = osp.join(CONFIGS, 'deeplabv3_edgeformer_s_os8_voc12aug-512x512.py')
CITYSCAPES = osp.join(CONFIGS, 'deeplabv3_edgeformer_s_cityscapes-512x1024.py')
# Official DeepLabV3-EdgeFormer-S, at output stride 16 and 8 alike.
PARAMS = dict(backbone=4_292_408, decode_head=1_523_989)
OFFICIAL_PARAMS = 5_816_397


def num_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope='module', autouse=True)
def mmseg_scope():
    """mmseg's default scope for this module's tests, and only for them."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


@pytest.fixture(scope='module')
def voc_cfg():
    return Config.fromfile(VOC)


@pytest.fixture(scope='module')
def segmentor(voc_cfg):
    """The VOC model (output stride 16), random weights; the backbone's
    Pretrained init is not run."""
    torch.manual_seed(0)
    return MODELS.build(voc_cfg.model)


@pytest.mark.parametrize(
    'config, output_stride', [(VOC, 16), (VOC_OS8, 8)], ids=['os16', 'os8'])
def test_configs_build_with_official_parameter_count(config, output_stride):
    model = MODELS.build(Config.fromfile(config).model)
    assert isinstance(model.backbone, EdgeFormer)
    assert model.backbone.output_stride == output_stride
    assert model.backbone.arch == EdgeFormer.arch_settings['s']
    assert model.backbone.stage_names[-1] == 'layer5'
    assert num_params(model) == sum(PARAMS.values()) == OFFICIAL_PARAMS
    for part, expected in PARAMS.items():
        assert num_params(getattr(model, part)) == expected, part
    assert not model.with_auxiliary_head
    head = model.decode_head
    assert isinstance(head, DeepLabV3Head)
    assert head.num_classes == 21 and head.in_channels == 160
    # 1x1 projection of the 1x1 branch, 3 atrous branches and the pooled
    # branch, 256 channels each.
    conv = head.bottleneck.conv
    assert (conv.in_channels, conv.out_channels) == (5 * 256, 256)
    assert conv.kernel_size == (1, 1) and conv.padding == (0, 0)
    assert [m.conv.dilation[0] for m in head.aspp_modules] == [1, 6, 12, 18]
    assert [m.conv.kernel_size[0] for m in head.aspp_modules] == [1, 3, 3, 3]
    assert isinstance(head.bottleneck_dropout, nn.Dropout)
    assert head.bottleneck_dropout.p == 0.1
    assert isinstance(head.dropout, nn.Dropout2d) and head.dropout.p == 0.1


def randomise_norms(module):
    """Non-trivial BN statistics and affine parameters."""
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            nn.init.uniform_(m.running_mean, -0.5, 0.5)
            nn.init.uniform_(m.running_var, 0.5, 1.5)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)


def conv_bn_relu(module, x):
    """A ConvModule (conv, BN in eval mode, ReLU) written out."""
    conv, bn = module.conv, module.bn
    x = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding,
                 conv.dilation)
    x = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                     False, 0., bn.eps)
    return F.relu(x)


def test_head_by_value_concatenates_in_the_official_order():
    torch.manual_seed(0)
    head = DeepLabV3Head(
        in_channels=16,
        channels=8,
        num_classes=5,
        dilations=(1, 6, 12, 18),
        norm_cfg=dict(type='BN'))
    head.init_weights()
    randomise_norms(head)
    head.eval()
    x = torch.rand(2, 16, 20, 24)
    with torch.no_grad():
        out = head([x])
        branches = [conv_bn_relu(m, x) for m in head.aspp_modules]
        pooled = conv_bn_relu(head.image_pool[1],
                              x.mean(dim=(2, 3), keepdim=True))
        pooled = pooled.expand_as(branches[0])

        def classify(feats):
            feats = conv_bn_relu(head.bottleneck, feats)
            return F.conv2d(feats, head.conv_seg.weight, head.conv_seg.bias)

        official = classify(torch.cat(branches + [pooled], dim=1))
        mmseg_order = classify(torch.cat([pooled] + branches, dim=1))
    assert out.shape == (2, 5, 20, 24)
    torch.testing.assert_close(out, official)
    assert (out - mmseg_order).abs().max() > 0.1


def test_head_official_initialisation():
    torch.manual_seed(0)
    # No norms: every conv has a bias.
    head = DeepLabV3Head(in_channels=160, channels=256, num_classes=21)
    head.init_weights()
    convs = {
        name: m
        for name, m in head.named_modules() if isinstance(m, nn.Conv2d)
    }
    assert len(convs) == 7 and 'conv_seg' in convs
    for name, conv in convs.items():
        fan_out = conv.out_channels * conv.kernel_size[0] * \
            conv.kernel_size[1]
        assert conv.weight.mean().abs() < 0.1 * (2 / fan_out)**0.5, name
        assert conv.weight.std().item() == pytest.approx(
            (2 / fan_out)**0.5, rel=0.1), name
        assert (conv.bias == 0).all(), name


def seg_batch(sizes, num_classes=21, seed=0):
    """Data as a dataloader gives it: uint8 images and label maps with an
    ignored (255) band on the left."""
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for height, width in sizes:
        inputs.append(
            torch.randint(0, 256, (3, height, width), generator=gen).to(
                torch.uint8))
        labels = torch.randint(0, num_classes, (1, height, width),
                               generator=gen)
        labels[..., :16] = 255
        sample = SegDataSample(
            metainfo=dict(img_shape=(height, width),
                          ori_shape=(height, width)))
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_loss_at_512_with_padding_and_ignored_pixels(segmentor):
    segmentor.train()
    torch.manual_seed(0)
    data = segmentor.data_preprocessor(
        seg_batch([(512, 512), (448, 400)]), training=True)
    inputs, samples = data['inputs'], data['data_samples']
    # Padded to the crop size; official input range [0, 1].
    assert inputs.shape == (2, 3, 512, 512)
    assert 0 <= inputs.min() and inputs.max() <= 1
    padded = samples[1].gt_sem_seg.data
    assert padded.shape == (1, 512, 512)
    assert (padded[:, 448:] == 255).all() and (padded[..., 400:] == 255).all()
    losses = segmentor.loss(inputs, samples)
    loss = losses['decode.loss_ce']
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    assert loss.requires_grad
    assert 0 <= losses['decode.acc_seg'] <= 100


@pytest.mark.parametrize(
    'size', [(512, 512), (384, 640), (250, 333)],
    ids=['512x512', '384x640', '250x333'])
def test_predict_at_any_size(segmentor, size):
    segmentor.eval()
    feature_shapes = []
    hook = segmentor.backbone.register_forward_hook(
        lambda module, args, outs: feature_shapes.extend(
            o.shape for o in outs))
    try:
        with torch.no_grad():
            if size == (250, 333):
                # Through the data preprocessor, with data samples.
                batch = seg_batch([size])
                data = segmentor.data_preprocessor(batch, training=False)
                results = segmentor.predict(data['inputs'],
                                            data['data_samples'])
            else:
                results = segmentor.predict(torch.rand(1, 3, *size))
    finally:
        hook.remove()
    height, width = size
    # Output stride 16, rounded up.
    assert feature_shapes == [(1, 160, -(-height // 16), -(-width // 16))]
    (result, ) = results
    assert result.seg_logits.data.shape == (21, height, width)
    assert result.pred_sem_seg.data.shape == (1, height, width)
    torch.testing.assert_close(result.pred_sem_seg.data[0],
                               result.seg_logits.data.argmax(dim=0))


def test_cityscapes_config():
    cfg = Config.fromfile(CITYSCAPES)
    assert cfg.model.data_preprocessor.size == (512, 1024)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    assert model.decode_head.num_classes == 19
    assert model.backbone.output_stride == 16
    # Two classes fewer than VOC: 2 x (256 weights + 1 bias).
    assert num_params(model) == OFFICIAL_PARAMS - 2 * 257
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        assert loader.dataset.type == 'CityscapesDataset'
        assert loader.dataset.data_root == 'data/cityscapes/'
    with torch.no_grad():
        logits = model.encode_decode(
            torch.rand(1, 3, 512, 1024), [dict(img_shape=(512, 1024))])
    assert logits.shape == (1, 19, 512, 1024)
    assert torch.isfinite(logits).all()


def test_optimizer_head_at_ten_times_the_learning_rate(segmentor, voc_cfg):
    wrapper = build_optim_wrapper(segmentor, voc_cfg.optim_wrapper)
    optimizer = wrapper.optimizer
    assert isinstance(optimizer, torch.optim.AdamW)
    names = {id(p): name for name, p in segmentor.named_parameters()}
    seen = Counter()
    head_params = 0
    for group in optimizer.param_groups:
        assert group['weight_decay'] == pytest.approx(0.01)
        assert group['betas'] == (0.9, 0.999)
        for param in group['params']:
            name = names[id(param)]
            seen[name] += 1
            if name.startswith('decode_head.'):
                head_params += param.numel()
                assert group['lr'] == pytest.approx(9e-3), name
            else:
                assert name.startswith('backbone.'), name
                assert group['lr'] == pytest.approx(9e-4), name
    # Every parameter in exactly one group.
    assert seen == Counter(names.values())
    assert head_params == PARAMS['decode_head']
