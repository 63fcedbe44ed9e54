"""The EdgeFormer backbone: architecture figures, options and bad input."""
import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from edgeformer_mm.models import EdgeFormer
from edgeformer_mm.models.layers import (AxialPositionalEmbedding,
                                         GlobalCircularConv)
from edgeformer_mm.utils import count_macs, count_parameters

# Parameter counts of the official classifiers (hkzhang91/EdgeFormer).
OFFICIAL_PARAMS = {'xs': 2_185_384, 's': 5_037_088, 'h': 20_403_940}
# MACs of the official classifiers at 256x256, in millions, counted like
# count_macs does (the official code, random weights).
OFFICIAL_MACS = {'xs': 944.0169, 's': 1657.3476, 'h': 8544.4187}
S_CHANNELS = [16, 32, 64, 96, 128, 160, 640]
STRIDES = [2, 2, 4, 8, 16, 32, 32]


def classifier(arch):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    # Runners in other tests leave their codebase's default scope behind.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(
            dict(
                type='ImageClassifier',
                backbone=dict(type='EdgeFormer', arch=arch),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(
                    type='LinearClsHead',
                    num_classes=1000,
                    in_channels=960 if arch == 'h' else 640)))


@pytest.mark.parametrize('arch', ['xs', 's', 'h'])
def test_parameter_count_and_macs_equal_official(arch):
    model = classifier(arch).eval()
    assert count_parameters(model) == OFFICIAL_PARAMS[arch]
    macs = count_macs(model, torch.rand(1, 3, 256, 256)) / 1e6
    assert macs == pytest.approx(OFFICIAL_MACS[arch], abs=1e-4)


def out_size(size, stride):
    for _ in range(stride.bit_length() - 1):
        size = (size + 1) // 2
    return size


@pytest.mark.parametrize('shape', [(224, 224), (256, 256), (320, 320),
                                   (512, 512), (256, 320), (320, 256),
                                   (193, 257)])
def test_output_shapes(shape):
    model = EdgeFormer('s', out_indices=range(7)).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, *shape))
    assert len(outs) == 7
    for out, channels, stride in zip(outs, S_CHANNELS, STRIDES):
        assert out.shape == (1, channels, out_size(shape[0], stride),
                             out_size(shape[1], stride))


@pytest.mark.parametrize('arch, channels', [('xs', 640), ('h', 960)])
def test_other_archs_non_square(arch, channels):
    model = EdgeFormer(arch).eval()
    with torch.no_grad():
        (out, ) = model(torch.rand(2, 3, 96, 160))
    assert out.shape == (2, channels, 3, 5)


def test_tiny_input_with_size_one_maps():
    model = EdgeFormer('xs', out_indices=(3, 4, 5)).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 33, 17))
    assert [o.shape[2:] for o in outs] == [(5, 3), (3, 2), (2, 1)]


def test_negative_out_indices_and_truncation():
    model = EdgeFormer('s', out_indices=(-3, -2))
    assert model.out_indices == [4, 5]
    # Nothing after layer5 is built: no expansion conv, no unused weights.
    assert model.stage_names[-1] == 'layer5'
    assert not hasattr(model, 'conv_1x1_exp')
    outs = model(torch.rand(2, 3, 64, 96))
    assert [o.shape for o in outs] == [(2, 128, 4, 6), (2, 160, 2, 3)]
    # A tuple works as well as a list (it is not modified in place).
    indices = (-1, )
    assert EdgeFormer('xs', out_indices=indices).out_indices == [6]


def test_frozen_stages_stay_frozen_after_train():
    model = EdgeFormer('xs', frozen_stages=3)
    model.train()
    for i, name in enumerate(model.stage_names):
        stage = getattr(model, name)
        frozen = i <= 3
        assert all(p.requires_grad != frozen for p in stage.parameters())
        assert all(m.training != frozen for m in stage.modules())


def test_frozen_stages_keep_their_statistics():
    torch.manual_seed(0)
    model = EdgeFormer('xs', frozen_stages=1, out_indices=(2, ))
    stem_bn = model.stem.bn
    before = stem_bn.running_mean.clone()
    model.train()
    model(torch.rand(2, 3, 32, 32))
    torch.testing.assert_close(stem_bn.running_mean, before)
    assert model.layer2[0].expand_conv.bn.running_mean.abs().sum() > 0


def test_norm_eval():
    model = EdgeFormer('xs', norm_eval=True, out_indices=(5, ))
    model.train()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and not any(m.training for m in norms)
    assert model.layer5[1].blocks[0].ffn[1].training
    model = EdgeFormer('xs', norm_eval=False, out_indices=(5, ))
    model.train()
    assert all(m.training for m in model.modules())


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = EdgeFormer('xs', out_indices=(6, ))
    model.train()
    (out, ) = model(torch.rand(2, 3, 64, 48))
    out.square().mean().backward()
    missing = [
        name for name, p in model.named_parameters()
        if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing
    names = [name for name, _ in model.named_parameters()]
    assert any(name.endswith('meta_kernel') for name in names)
    assert any(name.endswith('meta_embedding') for name in names)


def test_official_initialisation():
    torch.manual_seed(0)
    model = EdgeFormer('s', out_indices=(3, ))
    model.init_weights()
    pes = [m for m in model.modules()
           if isinstance(m, AxialPositionalEmbedding)]
    gccs = [m for m in model.modules() if isinstance(m, GlobalCircularConv)]
    # PEs only in the first GCC block of the stage: 2 branches x 2 PEs.
    assert len(pes) == 4 and len(gccs) == 2 * 2 * 2
    assert 0.9 < torch.cat([p.meta_embedding.flatten() for p in pes]).std() \
        < 1.1
    assert all(g.meta_kernel.abs().max() <= 32**-0.5 for g in gccs)
    conv = model.layer3[1].fuse.conv.weight
    fan_out = conv.shape[0] * conv.shape[2] * conv.shape[3]
    assert conv.std().item() == pytest.approx((2 / fan_out)**0.5, rel=0.1)
    assert (model.layer3[1].blocks[0].ffn[1].bias == 0).all()


def strided_and_dilated_convs(model):
    """Names of the convs with stride 2, and {name: (dilation, padding)} of
    the dilated ones."""
    convs = [(name, m) for name, m in model.named_modules()
             if isinstance(m, nn.Conv2d)]
    strided = [name for name, conv in convs if conv.stride != (1, 1)]
    dilated = {
        name: (conv.dilation, conv.padding)
        for name, conv in convs if conv.dilation != (1, 1)
    }
    return strided, dilated


@pytest.mark.parametrize('output_stride, unstrided',
                         [(32, []), (16, ['layer5']),
                          (8, ['layer4', 'layer5'])])
def test_output_stride_strides_and_dilations(output_stride, unstrided):
    kwargs = {} if output_stride == 32 else dict(output_stride=output_stride)
    model = EdgeFormer('s', out_indices=(5, ), **kwargs)
    assert model.output_stride == output_stride
    strided, dilated = strided_and_dilated_convs(model)
    # Only the depthwise conv of each first MobileNetV2 block downsamples.
    assert strided == ['stem.conv'] + [
        f'layer{i}.0.depthwise_conv.conv' for i in (2, 3, 4, 5)
        if f'layer{i}' not in unstrided
    ]
    for i in (4, 5):
        stride = 1 if f'layer{i}' in unstrided else 2
        depthwise = getattr(model, f'layer{i}')[0].depthwise_conv.conv
        assert depthwise.stride == (stride, stride)
    if output_stride == 8:
        assert dilated == {'layer5.0.depthwise_conv.conv': ((2, 2), (2, 2))}
    else:
        assert dilated == {}


def test_output_stride_8_shapes_at_512():
    # Output stride 16 at 512 (layer5 160x32x32) is checked with the
    # segmentor, in test_deeplabv3.py.
    model = EdgeFormer('s', out_indices=(3, 4, 5), output_stride=8).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 512, 512))
    assert [o.shape[1:] for o in outs] == [
        (96, 64, 64), (128, 64, 64), (160, 64, 64)
    ]


def test_output_stride_keeps_the_weights_and_subsamples_exactly():
    """Same parameters at every output stride (a classifier checkpoint loads
    strictly), and the blocks that stop downsampling compute what the
    downsampling ones do, at every position instead of every other one:
    stride 2 is stride 1 subsampled, and a dilation-2 conv on a map is, at
    even positions, the undilated conv on the subsampled map."""
    torch.manual_seed(0)
    models = {
        stride: EdgeFormer('xs', out_indices=(5, ), output_stride=stride)
        for stride in (32, 16, 8)
    }
    for model in models.values():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                nn.init.uniform_(m.running_mean, -0.5, 0.5)
                nn.init.uniform_(m.running_var, 0.5, 1.5)
                nn.init.uniform_(m.weight, 0.5, 1.5)
                nn.init.uniform_(m.bias, -0.5, 0.5)
    weights = models[32].state_dict()
    assert count_parameters(models[16]) == count_parameters(models[32])
    assert count_parameters(models[8]) == count_parameters(models[32])
    models[16].load_state_dict(weights)
    models[8].load_state_dict(weights)
    for model in models.values():
        model.eval()
    with torch.no_grad():
        x4 = torch.rand(1, 96, 12, 10)
        expected = models[32].layer4[0](x4)
        torch.testing.assert_close(models[16].layer4[0](x4), expected)
        torch.testing.assert_close(models[8].layer4[0](x4)[..., ::2, ::2],
                                   expected)
        x5 = torch.rand(1, 128, 12, 10)
        expected = models[32].layer5[0](x5)
        assert expected.shape[2:] == (6, 5)
        undilated = models[16].layer5[0](x5)
        torch.testing.assert_close(undilated[..., ::2, ::2], expected)
        # OS8: layer5 sees a map twice as large as at OS16.
        x5_large = torch.rand(1, 128, 24, 20)
        torch.testing.assert_close(
            models[8].layer5[0](x5_large)[..., ::2, ::2],
            models[16].layer5[0](x5_large[..., ::2, ::2]))


def custom_arch(**changes):
    arch = {
        'stem_channels': 8,
        'stem_kernel_size': 3,
        'layers': [['mv2', 8, 1, 1], ['mv2', 16, 2, 1],
                   ['parc', 24, 2, 16, 32, 1, 8],
                   ['parc', 32, 2, 32, 64, 1, 4],
                   ['parc', 40, 2, 40, 80, 1, 2]],
        'fusion': 'add',
    }
    arch.update(changes)
    return arch


def test_custom_arch():
    model = EdgeFormer(custom_arch(), in_channels=1, out_indices=(5, 6))
    outs = model(torch.rand(2, 1, 64, 32))
    assert [o.shape for o in outs] == [(2, 40, 2, 1), (2, 160, 2, 1)]


def test_registries_build_it():
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine import Config
    from mmpretrain.registry import MODELS as CLS_MODELS
    from mmseg.registry import MODELS as SEG_MODELS

    # What a config's custom_imports does.
    Config(dict(custom_imports=dict(imports=['edgeformer_mm'])))
    for registry in (CLS_MODELS, DET_MODELS, SEG_MODELS):
        for type_name in ('EdgeFormer', 'edgeformer_mm.EdgeFormer'):
            model = registry.build(
                dict(type=type_name, arch='xs', out_indices=(4, )))
            assert isinstance(model, EdgeFormer)


def test_registries_build_it_inside_a_default_scope():
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = DET_MODELS.build(
            dict(type='EdgeFormer', arch='xs', out_indices=(4, )))
    assert isinstance(model, EdgeFormer)


VALID = dict(arch='xs', out_indices=(4, ))


@pytest.mark.parametrize(
    'kwargs, error, message',
    [
        (dict(arch='m'), ValueError, r"Unknown EdgeFormer arch 'm'.*'xs'"),
        (dict(arch=3), TypeError, 'str or a dict'),
        (dict(arch={'layers': []}), ValueError, 'exactly the keys'),
        (dict(out_indices=(7, )), ValueError, 'from -7 to 6'),
        (dict(out_indices=(-8, )), ValueError, 'from -7 to 6'),
        (dict(out_indices=()), TypeError, 'non-empty'),
        (dict(out_indices=(1.5, )), ValueError, 'ints'),
        (dict(frozen_stages=7), ValueError, 'from -1 to 6'),
        (dict(frozen_stages=-2), ValueError, 'from -1 to 6'),
        (dict(in_channels=0), ValueError, 'positive int'),
        (dict(output_stride=7), ValueError,
         r'output_stride must be one of.*got 7'),
        (dict(output_stride=4), ValueError, 'output_stride'),
    ])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        EdgeFormer(**{**VALID, **kwargs})


@pytest.mark.parametrize(
    'arch, message',
    [
        (custom_arch(fusion='mul'), "'concat' or 'add'"),
        (custom_arch(stem_kernel_size=4), 'odd'),
        (custom_arch(stem_channels=-8), 'positive int'),
        (custom_arch(layers=[['mv2', 8, 1, 1]]), 'list of 5'),
        (custom_arch(layers=[['vit', 8, 1, 1]] * 5), r"\['mv2', out_ch"),
        (custom_arch(layers=[['mv2', 8, 1]] * 5), 'has the fields'),
        (custom_arch(layers=[['mv2', 8, 3, 1]] * 5), 'stride must be 1 or 2'),
        (custom_arch(layers=[['parc', 8, 2, 15, 32, 1, 8]] * 5), 'even'),
        (custom_arch(layers=[['parc', 8, 2, 16, 32, 1, 0]] * 5),
         'meta_kernel_size must be a positive int'),
    ])
def test_bad_custom_arch(arch, message):
    with pytest.raises(ValueError, match=message):
        EdgeFormer(arch)


@pytest.mark.parametrize('shape', [(1, 4, 32, 32), (1, 1, 32, 32),
                                   (3, 32, 32)])
def test_bad_input_tensor(shape):
    model = EdgeFormer(**VALID)
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        model(torch.rand(*shape))


def test_conv_cfg_reaches_every_conv_but_the_gcc_blocks():
    from mmcv.cnn.bricks import Conv2dAdaptivePadding

    from edgeformer_mm.models.layers import GCCBlock
    model = EdgeFormer(
        arch='xs', conv_cfg=dict(type='Conv2dAdaptivePadding'))
    in_gcc_blocks = {
        id(m)
        for block in model.modules() if isinstance(block, GCCBlock)
        for m in block.modules()
    }
    convs = [
        m for m in model.modules()
        if isinstance(m, nn.Conv2d) and id(m) not in in_gcc_blocks
    ]
    assert convs and all(
        isinstance(m, Conv2dAdaptivePadding) for m in convs)
