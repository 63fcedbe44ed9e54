"""ParC ConvNets: the grouped GCC, the ParC operator and mixer, and the
ParC-MobileNetV2, ParC-ResNet and ParC-ConvNeXt backbones with their
configs."""
import copy
import logging

import pytest
import torch
from helpers import run_main, shorten_to_one_epoch, write_photo
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmpretrain.models.backbones import ConvNeXt, MobileNetV2, ResNet
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import edgeformer_mm  # noqa: F401
from edgeformer_mm.models import (ParCConvNeXt, ParCMixer, ParCMobileNetV2,
                                  ParCOperator, ParCResNet, plan_parc_blocks)
from edgeformer_mm.models.layers.gcc import (circulant_matmul,
                                             global_circular_conv, resize_meta)

PARC_CONFIGS = 'configs/mmpretrain/parc_convnets'
# Parameter counts with a 1000-class head. The ParC ones equal those of the
# authors' reference definitions (ParC_ConvNets/ of hkzhang-git/ParC-Net,
# instantiated once to check); the paper rounds them to 3.5 M, 24 M, 7.4 M.
CONFIG_PARAMS = {
    'parc-mobilenet-v2_32xb128_in1k': 3_532_136,
    'mobilenet-v2_32xb128-convnext-recipe_in1k': 3_504_872,
    'parc-resnet50_32xb128_in1k': 23_737_640,
    'resnet50_32xb128-convnext-recipe_in1k': 25_557_032,
    'parc-convnext-xt_32xb128_in1k': 7_412_824,
    'convnext-xt_32xb128_in1k': 7_438_360,
}
PAPER_PARAMS = {
    'parc-mobilenet-v2_32xb128_in1k': 3.5e6,
    'parc-resnet50_32xb128_in1k': 24e6,
    'parc-convnext-xt_32xb128_in1k': 7.4e6,
}


@pytest.fixture(autouse=True, scope='module')
def quiet_init_logs():
    # init_weights logs every parameter at INFO.
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def small_backbones():
    """(ParC backbone, plain counterpart) pairs, narrow where the class
    allows, with every stage output."""
    return {
        'mobilenet_v2': (ParCMobileNetV2(
            widen_factor=0.5, out_indices=range(8)),
                         MobileNetV2(widen_factor=0.5,
                                     out_indices=range(8))),
        'resnet': (ParCResNet(
            50, base_channels=16, stem_channels=16, out_indices=range(4)),
                   ResNet(50, base_channels=16, stem_channels=16,
                          out_indices=range(4))),
        'convnext': (ParCConvNeXt(
            'xtiny', out_indices=[0, 1, 2, 3], gap_before_final_norm=False),
                     ConvNeXt(ParCConvNeXt.arch_settings['xtiny'],
                              out_indices=[0, 1, 2, 3],
                              gap_before_final_norm=False)),
    }


def randomize_statistics(model):
    """Non-trivial BN statistics and ConvNeXt layer scales (1e-6 at init
    would hide the ParC blocks), so that comparisons see every part."""
    torch.manual_seed(1)
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    for name, param in model.named_parameters():
        if name.endswith('gamma'):
            param.data.fill_(0.5)


def naive_circular_conv(x, kernel, dim, groups):
    """The definition: y[o, i] = sum over the group's channels c and j of
    k[o, c, j] * x[c, (i + j) % n] along ``dim``."""
    x = x if dim == 2 else x.transpose(2, 3)
    out_channels, group_width, n = kernel.shape
    per_group = out_channels // groups
    y = torch.zeros(x.shape[0], out_channels, *x.shape[2:])
    for o in range(out_channels):
        first = o // per_group * group_width
        for i in range(n):
            for j in range(n):
                y[:, o, i] += (kernel[o, :, j, None] *
                               x[:, first:first + group_width,
                                 (i + j) % n]).sum(1)
    return y if dim == 2 else y.transpose(2, 3)


@pytest.mark.parametrize('groups', [1, 2, 6])
@pytest.mark.parametrize('dim', [2, 3])
def test_grouped_circular_conv_matches_its_definition(groups, dim):
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 7)
    n = x.shape[dim]
    kernel = torch.randn(6, 6 // groups, n)
    expected = naive_circular_conv(x, kernel, dim, groups)
    bias = torch.randn(6)
    torch.testing.assert_close(
        global_circular_conv(x, kernel, dim, bias),
        expected + bias[:, None, None])
    # The matrix form that dynamic ONNX export uses.
    torch.testing.assert_close(circulant_matmul(x, kernel, dim), expected)
    if groups == 6:
        # A (C, 1, n) kernel is the (C, n) depthwise one.
        depthwise = kernel[:, 0]
        torch.testing.assert_close(global_circular_conv(x, depthwise, dim),
                                   expected)
        torch.testing.assert_close(circulant_matmul(x, depthwise, dim),
                                   expected)


def test_grouped_meta_kernels_resize_like_depthwise_ones():
    meta = torch.randn(4, 3, 7)
    resized = resize_meta(meta, 12)
    assert resized.shape == (4, 3, 12)
    for row in range(3):
        torch.testing.assert_close(resized[:, row],
                                   resize_meta(meta[:, row], 12))


@pytest.mark.parametrize('groups', [None, 1])
@pytest.mark.parametrize('use_pe', [True, False])
def test_operator_is_pe_then_gcc_with_bias(groups, use_pe):
    torch.manual_seed(0)
    op = ParCOperator(4, 7, 'w', use_pe, groups)
    x = torch.randn(2, 4, 5, 9)
    kernel = resize_meta(op.gcc.meta_kernel, 9)
    inputs = x + resize_meta(op.pe.meta_embedding, 9)[:, None] if use_pe \
        else x
    torch.testing.assert_close(
        op(x), global_circular_conv(inputs, kernel, 3, op.gcc.bias))
    assert (op.pe is not None) == use_pe


@pytest.mark.parametrize('groups', [None, 1])
@pytest.mark.parametrize('use_pe', [True, False])
def test_operator_deploy_mode_equals_eager_at_its_size(groups, use_pe):
    torch.manual_seed(0)
    for direction in ('h', 'w'):
        op = ParCOperator(4, 7, direction, use_pe, groups)
        x = torch.randn(2, 4, 6, 10)
        expected = op(x)
        op.switch_to_deploy(6, 10)
        assert not any(True for _ in op.parameters())
        torch.testing.assert_close(op(x), expected)
        with pytest.raises(ValueError, match='deploy mode for 6x10'):
            op(torch.randn(2, 4, 6, 12))
        # A following per-channel affine map (a BatchNorm) folds in.
        scale, shift = torch.rand(4) + 0.5, torch.randn(4)
        op.fold_affine(scale, shift)
        torch.testing.assert_close(
            op(x), expected * scale[:, None, None] + shift[:, None, None])
    with pytest.raises(RuntimeError, match='switch_to_deploy first'):
        ParCOperator(4, 7, 'h', use_pe, groups).fold_affine(scale, shift)


@pytest.mark.parametrize('kernel_init,groups,std', [
    ('kaiming', 1, (2 / (64 * 14))**0.5),
    ('kaiming', None, (2 / (64 * 14))**0.5),
    ('trunc_normal', None, 0.02),
])
def test_reset_parameters_follows_the_host_network(kernel_init, groups,
                                                   std):
    torch.manual_seed(0)
    op = ParCOperator(64, 14, 'h', True, groups, kernel_init)
    op.reset_parameters()
    kernel = op.gcc.meta_kernel
    assert kernel.std().item() == pytest.approx(std, rel=0.15)
    if kernel_init == 'trunc_normal':
        # mmengine's trunc_normal_, like timm's that ConvNeXt uses, cuts
        # at -2 and 2 absolute: 100 std here, so the kernel is in effect
        # normal. About 4.6% of a normal's values lie beyond 2 std (none if
        # it were cut there), and none of these 896 beyond 5 std.
        beyond_2_std = (kernel.abs() > 2 * std).float().mean().item()
        assert 0.02 < beyond_2_std < 0.08
        assert kernel.abs().max() <= 5 * std
    assert not op.gcc.bias.any()
    assert op.pe.meta_embedding.std().item() == pytest.approx(0.02, rel=0.15)
    with pytest.raises(ValueError, match='kernel_init'):
        ParCOperator(4, 7, 'h', True, kernel_init='xavier')


def test_mixer_mixes_each_half_along_one_axis():
    torch.manual_seed(0)
    mixer = ParCMixer(8, 7, use_pe=False)
    x = torch.randn(1, 8, 5, 6)
    base = mixer(x)
    # A change of channel 1 (first half) at row 2, column 3 reaches that
    # channel's column 3 only; of channel 5 (second half), its row 2 only.
    for channel, changed in ((1, (1, slice(None), 3)),
                             (5, (5, 2, slice(None)))):
        moved = x.clone()
        moved[0, channel, 2, 3] += 1
        diff = (mixer(moved) - base)[0].abs() > 1e-6
        expected = torch.zeros_like(diff)
        expected[changed] = True
        assert torch.equal(diff, expected)
    with pytest.raises(ValueError, match='splits its channels'):
        ParCMixer(7, 7, use_pe=False)


def test_plan_parc_blocks():
    assert plan_parc_blocks([2, 3], [2, 1], 'first') == {
        (1, 1): True,
        (1, 2): False
    }
    assert plan_parc_blocks([3], [1], 'all') == {(0, 1): True, (0, 2): True}
    with pytest.raises(ValueError, match='from 1 to the depth'):
        plan_parc_blocks([3, 3], [0, 3], 'all')
    with pytest.raises(ValueError, match='from 1 to the depth'):
        plan_parc_blocks([3, 3], [3], 'all')
    with pytest.raises(ValueError, match='pe_blocks'):
        plan_parc_blocks([3], [1], 'some')


def parc_layout(model):
    """Sorted (module name, meta kernel size, has PE) of each ParC mixer."""
    return sorted((name, m.parc_h.gcc.meta_kernel.shape[-1], m.parc_h.pe
                   is not None) for name, m in model.named_modules()
                  if isinstance(m, ParCMixer))


def test_blocks_replaced_as_in_the_reference_definitions():
    assert parc_layout(ParCMobileNetV2()) == [
        ('layer4.2.conv.1.conv', 14, True),
        ('layer4.3.conv.1.conv', 14, False),
        ('layer5.2.conv.1.conv', 14, True),
        ('layer6.2.conv.1.conv', 7, True),
    ]
    assert parc_layout(ParCResNet(50)) == [
        ('layer3.3.conv2', 14, True),
        ('layer3.4.conv2', 14, True),
        ('layer3.5.conv2', 14, True),
        ('layer4.2.conv2', 7, True),
    ]
    assert parc_layout(ParCConvNeXt('xtiny')) == [
        ('stages.2.6.depthwise_conv', 14, True),
        ('stages.2.7.depthwise_conv', 14, True),
        ('stages.2.8.depthwise_conv', 14, True),
        ('stages.3.2.depthwise_conv', 7, True),
    ]
    # ResNet's ParC convolutions are dense within each half, the others
    # depthwise.
    resnet_kernel = ParCResNet(50).layer4[2].conv2.parc_w.gcc.meta_kernel
    assert resnet_kernel.shape == (256, 256, 7)
    convnext_kernel = ParCConvNeXt('xtiny').stages[3][2].depthwise_conv
    assert convnext_kernel.parc_w.gcc.meta_kernel.shape == (192, 7)
    # Other widths and placements.
    assert len(parc_layout(ParCConvNeXt('small'))) == 9 + 1
    assert parc_layout(
        ParCMobileNetV2(parc_start_blocks=(1, 2, 3, 4, 3, 3, 1),
                        pe_blocks='all')) == []
    with pytest.raises(ValueError, match='pass parc_start_blocks'):
        ParCResNet(101)
    with pytest.raises(ValueError, match='bottleneck depth'):
        ParCResNet(18)


def test_parameter_counts_within_2_percent_of_the_paper():
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        for name, expected in CONFIG_PARAMS.items():
            cfg = Config.fromfile(f'{PARC_CONFIGS}/{name}.py')
            model = MODELS.build(cfg.model)
            count = sum(p.numel() for p in model.parameters())
            assert count == expected, name
            if name in PAPER_PARAMS:
                assert abs(count / PAPER_PARAMS[name] - 1) < 0.02


@pytest.mark.parametrize('size', [(224, 224), (160, 160), (192, 288),
                                  (250, 130)])
def test_shapes_equal_the_plain_counterparts(size):
    x = torch.rand(1, 3, *size)
    for name, (parc, plain) in small_backbones().items():
        parc.eval(), plain.eval()
        with torch.no_grad():
            outs, expected = parc(x), plain(x)
        assert [o.shape for o in outs] == [e.shape for e in expected], name


def test_out_indices():
    x = torch.rand(1, 3, 64, 96)
    assert [o.shape[1] for o in ParCMobileNetV2(out_indices=(3, 7))(x)
            ] == [64, 1280]
    assert [o.shape[1] for o in ParCResNet(50)(x)] == [2048]
    convnext = ParCConvNeXt('xtiny', out_indices=[2, 3]).eval()
    assert [o.shape for o in convnext(x)] == [(1, 192), (1, 384)]


@pytest.mark.parametrize('name', ['mobilenet_v2', 'resnet', 'convnext'])
def test_frozen_stages_freeze_their_parc_blocks(name):
    frozen = {'mobilenet_v2': 6, 'resnet': 4, 'convnext': 4}[name]
    parc = {
        'mobilenet_v2': lambda: ParCMobileNetV2(frozen_stages=frozen),
        'resnet': lambda: ParCResNet(50, frozen_stages=frozen),
        'convnext': lambda: ParCConvNeXt('xtiny', frozen_stages=frozen),
    }[name]()
    parc.train()
    mixers = [m for m in parc.modules() if isinstance(m, ParCMixer)]
    assert mixers
    for mixer in mixers:
        assert not mixer.training
        assert not any(p.requires_grad for p in mixer.parameters())
    trainable = [n for n, p in parc.named_parameters() if p.requires_grad]
    if name == 'convnext':
        # Only the output norm is left.
        assert trainable and all(n.startswith('norm') for n in trainable)
    else:
        stages = [f'layer{i}.' for i in range(1, frozen + 1)]
        assert not [n for n in trainable if n.startswith(tuple(stages))]
        assert not any(
            m.training for n, m in parc.named_modules()
            if n.startswith(tuple(stages)) and isinstance(m, _BatchNorm))


@pytest.mark.parametrize('cls', [ParCMobileNetV2, ParCResNet])
def test_norm_eval_keeps_batch_norms_frozen(cls):
    model = cls(norm_eval=True) if cls is ParCMobileNetV2 else cls(
        50, norm_eval=True)
    model.train()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and not any(m.training for m in norms)
    mixer = next(m for m in model.modules() if isinstance(m, ParCMixer))
    assert mixer.training
    model = cls() if cls is ParCMobileNetV2 else cls(50)
    model.train()
    assert all(m.training for m in model.modules()
               if isinstance(m, _BatchNorm))


def test_gradients_reach_meta_kernels_biases_and_embeddings():
    x = torch.rand(2, 3, 96, 128)
    for name, (parc, _) in small_backbones().items():
        parc.init_weights()
        randomize_statistics(parc)
        parc.train()
        sum(out.square().mean() for out in parc(x)).backward()
        names = [
            n for n, _ in parc.named_parameters()
            if n.endswith(('meta_kernel', 'gcc.bias', 'meta_embedding'))
        ]
        assert names, name
        for n, p in parc.named_parameters():
            if n in names:
                assert p.grad is not None and p.grad.abs().sum() > 0, n


def test_init_weights_initialises_parc_like_the_host_convs():
    torch.manual_seed(0)
    resnet = ParCResNet(50)
    resnet.init_weights()
    kernel = resnet.layer3[3].conv2.parc_h.gcc.meta_kernel
    assert kernel.std().item() == pytest.approx((2 / (128 * 14))**0.5,
                                                rel=0.05)
    convnext = ParCConvNeXt('xtiny')
    convnext.init_weights()
    kernel = convnext.stages[2][6].depthwise_conv.parc_h.gcc.meta_kernel
    assert kernel.std().item() == pytest.approx(0.02, rel=0.2)


def test_registries_build_them():
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS as CLS_MODELS
    builds = [
        (CLS_MODELS, 'mmpretrain', dict(type='ParCResNet', depth=50)),
        (CLS_MODELS, 'mmpretrain', dict(type='ParCMobileNetV2')),
        (DET_MODELS, 'mmdet', dict(type='ParCConvNeXt', arch='xtiny')),
        (DET_MODELS, 'mmdet',
         dict(type='edgeformer_mm.ParCMobileNetV2', out_indices=(4, 7))),
    ]
    for registry, scope, cfg in builds:
        with DefaultScope.overwrite_default_scope(scope):
            model = registry.build(cfg)
        assert type(model).__name__ == cfg['type'].split('.')[-1]


def test_model_hub_names():
    from mmpretrain import get_model, list_models
    assert list_models('parc*') == [
        'parc-convnext-xt_32xb128_in1k', 'parc-mobilenet-v2_32xb128_in1k',
        'parc-resnet50_32xb128_in1k'
    ]
    assert set(list_models('*convnext-recipe*')) == {
        'mobilenet-v2_32xb128-convnext-recipe_in1k',
        'resnet50_32xb128-convnext-recipe_in1k'
    }
    model = get_model('parc-mobilenet-v2_32xb128_in1k')
    assert type(model.backbone).__name__ == 'ParCMobileNetV2'


@pytest.mark.parametrize('size', [(160, 224), (224, 224)])
def test_deploy_mode_equals_eager(size):
    x = torch.rand(2, 3, *size)
    for name, (parc, _) in small_backbones().items():
        parc.init_weights()
        randomize_statistics(parc)
        parc.eval()
        with torch.no_grad():
            expected = parc(x)
        deployed = copy.deepcopy(parc)
        deployed.switch_to_deploy(size)
        assert not any(
            list(m.parameters()) for m in deployed.modules()
            if isinstance(m, ParCOperator)), name
        with torch.no_grad():
            outs = deployed(x)
        for out, ref in zip(outs, expected):
            torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 *
                                       ref.abs().max().item())
        with pytest.raises(RuntimeError, match='cannot be trained'):
            deployed.train()


def test_deploy_folds_every_batch_norm():
    for model in (ParCResNet(50, base_channels=16, stem_channels=16),
                  ParCMobileNetV2(widen_factor=0.5)):
        model.eval().switch_to_deploy((96, 96))
        # Into the convolution before it, or into the ParC mixer before it.
        assert not [m for m in model.modules() if isinstance(m, _BatchNorm)]


def test_onnx_export_dynamic_and_baked(tmp_path):
    ort = pytest.importorskip('onnxruntime')
    for name, (parc, _) in small_backbones().items():
        parc.init_weights()
        randomize_statistics(parc)
        parc.eval()
        wrapped = LastOutput(parc).eval()
        path = str(tmp_path / f'{name}.onnx')
        torch.onnx.export(
            wrapped,
            torch.rand(1, 3, 128, 128),
            path,
            input_names=['input'],
            dynamic_axes={'input': {2: 'height', 3: 'width'}},
            dynamo=False)
        session = ort.InferenceSession(path)
        for size in ((128, 128), (96, 160)):
            x = torch.rand(1, 3, *size)
            with torch.no_grad():
                expected = wrapped(x)
            out = torch.from_numpy(session.run(None, {'input': x.numpy()})[0])
            torch.testing.assert_close(
                out, expected, rtol=1e-4,
                atol=1e-4 * expected.abs().max().item())
        baked = copy.deepcopy(parc)
        baked.switch_to_deploy((96, 160))
        torch.onnx.export(
            LastOutput(baked).eval(),
            torch.rand(1, 3, 96, 160),
            path,
            input_names=['input'],
            dynamo=False)
        session = ort.InferenceSession(path)
        out = torch.from_numpy(session.run(None, {'input': x.numpy()})[0])
        torch.testing.assert_close(
            out, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


class LastOutput(nn.Module):

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone(x)[-1]


@pytest.mark.slow
@pytest.mark.parametrize('config,deploy_cfg', [
    ('parc-mobilenet-v2_32xb128_in1k', 'classification_ncnn_static-224x224'),
    ('parc-mobilenet-v2_32xb128_in1k', 'classification_onnxruntime_dynamic'),
    ('parc-resnet50_32xb128_in1k',
     'classification_onnxruntime_static-224x224'),
])
def test_deploy_tool_converts_them(config, deploy_cfg, calibrated_checkpoint,
                                   tmp_path, capsys):
    """tools/deploy.py converts a ParC classifier and matches PyTorch within
    its tolerances (scores 1e-4 relative; it exits with 1 if not); static
    ONNX graphs are baked."""
    pytest.importorskip('skimage', reason='scikit-image is not installed')
    import onnx
    config = f'{PARC_CONFIGS}/{config}.py'
    photo = write_photo('coffee', tmp_path / 'coffee.jpg')
    run_main('tools/deploy.py', config, calibrated_checkpoint(config),
             f'configs/mmdeploy/{deploy_cfg}.py', photo, '--work-dir',
             tmp_path / 'out')
    assert 'vs PyTorch on' in capsys.readouterr().out
    if 'static' in deploy_cfg and 'onnxruntime' in deploy_cfg:
        graph = onnx.load(str(tmp_path / 'out' / 'end2end.onnx'))
        ops = {node.op_type for node in graph.graph.node}
        assert not {'Resize', 'Range', 'Mod', 'MatMul'} & ops


def test_deploy_tool_refuses_a_static_size_other_than_the_pipelines(
        calibrated_checkpoint, tmp_path):
    """The configs test at 224x224: a model baked for 256x256 would give
    wrong results."""
    pytest.importorskip('skimage', reason='scikit-image is not installed')
    config = f'{PARC_CONFIGS}/parc-convnext-xt_32xb128_in1k.py'
    photo = write_photo('coffee', tmp_path / 'coffee.jpg')
    with pytest.raises(SystemExit, match='makes 224x224 inputs'):
        run_main(
            'tools/deploy.py', config, calibrated_checkpoint(config),
            'configs/mmdeploy/classification_onnxruntime_static-256x256.py',
            photo, '--work-dir', tmp_path / 'out')


@pytest.mark.slow
@pytest.mark.parametrize('name', [
    'parc-mobilenet-v2_32xb128_in1k', 'parc-resnet50_32xb128_in1k',
    'parc-convnext-xt_32xb128_in1k'
])
def test_short_train_with_the_recipe_on_the_tiny_set(name, tiny_root,
                                                     tmp_path):
    """Two iterations of the ImageNet config (Mixup/CutMix, RandAugment,
    EMA, AdamW) on the tiny shapes set at 32x32: the ParC weights train."""
    from edgeformer_mm.utils import build_runner
    cfg = Config.fromfile(f'{PARC_CONFIGS}/{name}.py')
    cfg.model.head.num_classes = 4
    cfg.data_preprocessor = dict(num_classes=4)
    classes = f'{tiny_root}/classes.txt'
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline[1].scale = 32  # RandomResizedCrop

    def tiny_set(split, pipeline):
        return dict(
            type='CustomDataset',
            data_root=tiny_root,
            ann_file=f'meta/{split}.txt',
            data_prefix=split,
            classes=classes,
            pipeline=pipeline)

    cfg.train_dataloader.update(
        batch_size=8, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset = tiny_set('train', pipeline)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.update(batch_size=4, num_workers=0, persistent_workers=False)
        loader.dataset = tiny_set(
            'val', [dict(type='LoadImageFromFile'),
                    dict(type='PackInputs')])
    cfg.val_evaluator = cfg.test_evaluator = dict(
        type='Accuracy', topk=(1, ))
    shorten_to_one_epoch(cfg, tmp_path)
    runner = build_runner(cfg)
    before = {
        name: param.detach().clone()
        for name, param in runner.model.named_parameters()
        if 'parc' in name
    }
    runner.train()
    assert runner.iter == 2
    assert 0 <= runner.val()['accuracy/top1'] <= 100
    params = dict(runner.model.named_parameters())
    assert len(before) >= 4 * 4
    for name, value in before.items():
        assert not torch.equal(params[name], value), name


def test_mask_rcnn_configs_train_and_predict():
    """The Mask R-CNN configs build with mmdet's standard parts and a ParC
    (or plain) ConvNeXt-XT backbone feeding the FPN; a loss step and a
    prediction run on a small image."""
    from mmdet.registry import MODELS as DET_MODELS
    from mmdet.testing import demo_mm_inputs
    from mmengine.registry import DefaultScope
    params = {}
    for name in ('mask-rcnn_convnext-xt_fpn_amp-ms-crop-3x_coco',
                 'mask-rcnn_parc-convnext-xt_fpn_amp-ms-crop-3x_coco'):
        cfg = Config.fromfile(f'configs/mmdet/{name}.py')
        cfg.model.backbone.init_cfg = None  # no ImageNet checkpoint here
        with DefaultScope.overwrite_default_scope('mmdet'):
            model = DET_MODELS.build(cfg.model)
            model.init_weights()
            torch.manual_seed(0)
            data = model.data_preprocessor(
                demo_mm_inputs(
                    1, [[3, 128, 160]], num_items=[2], with_mask=True),
                True)
            losses = model.loss(data['inputs'], data['data_samples'])
            loss, _ = model.parse_losses(losses)
            loss.backward()
            assert torch.isfinite(loss)
            model.eval()
            with torch.no_grad():
                data = model.data_preprocessor(
                    demo_mm_inputs(1, [[3, 128, 160]], num_items=[1]), False)
                results = model.predict(data['inputs'], data['data_samples'])
            assert 'masks' in results[0].pred_instances
        params[type(model.backbone).__name__] = sum(
            p.numel() for p in model.backbone.parameters())
        if isinstance(model.backbone, ParCConvNeXt):
            kernel = model.backbone.stages[3][2].depthwise_conv.parc_h
            assert kernel.gcc.meta_kernel.grad.abs().sum() > 0
    # Without the classifier's final norm and head, the backbones differ
    # by the ParC blocks only.
    assert params['ConvNeXt'] - params['ParCConvNeXt'] == 7_438_360 - 7_412_824


def test_tiny_configs_differ_only_in_the_backbone():
    configs = {
        name: Config.fromfile(f'{PARC_CONFIGS}/{name}_1xb32_tiny-shapes.py')
        for name in ('mobilenet-v2', 'parc-mobilenet-v2')
    }
    plain, parc = (configs[name].to_dict()
                   for name in ('mobilenet-v2', 'parc-mobilenet-v2'))
    assert plain['model'].pop('backbone')['type'] == 'MobileNetV2'
    assert parc['model'].pop('backbone')['type'] == 'ParCMobileNetV2'
    plain.pop('filename', None), parc.pop('filename', None)
    assert plain == parc
    assert plain['model']['head']['num_classes'] == 4
    assert plain['model']['train_cfg']['augments'] is None
