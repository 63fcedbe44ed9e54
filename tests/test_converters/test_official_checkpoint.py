"""The converter of official EdgeFormer checkpoints, on synthetic official
checkpoints built from the key lists of the official models
(tests/data/official_state_dicts: every key and shape, random values)."""
import ast
import functools
import os.path as osp
import re

import pytest
import torch
import torch.nn.functional as F
from helpers import REPO, run_main, run_script

import edgeformer_mm  # noqa: F401  (registers the modules)
from edgeformer_mm.utils import build_model
from edgeformer_mm.converters.official_checkpoint import (
    ConversionError, convert_official_state_dict, guess_task,
    read_official_checkpoint)

KEY_LISTS = osp.join(REPO, 'tests', 'data', 'official_state_dicts')
TOOL = 'tools/model_converters/edgeformer_official_to_mm.py'
# (official key list, task, our config)
MODELS = {
    'xs': ('edgeformer_xs', 'cls',
           'mmpretrain/edgeformer/edgeformer-xs_8xb128_in1k.py'),
    's': ('edgeformer_s', 'cls',
          'mmpretrain/edgeformer/edgeformer-s_8xb128_in1k.py'),
    'h': ('edgeformer_h', 'cls',
          'mmpretrain/edgeformer/edgeformer-h_8xb128_in1k.py'),
    'ssd': ('ssd_edgeformer_s', 'det', 'mmdet/ssdlite_edgeformer_s_coco.py'),
    'deeplabv3': ('deeplabv3_edgeformer_s', 'seg',
                  'mmseg/deeplabv3_edgeformer_s_voc12aug-512x512.py'),
}


def official_state_dict(name, seed=0):
    """Random values (positive variances) with every key and shape of an
    official model."""
    gen = torch.Generator().manual_seed(seed)
    state_dict = {}
    with open(osp.join(KEY_LISTS, f'{name}_state_dict.txt')) as f:
        for line in f:
            if line.startswith('#') or not line.strip():
                continue
            key, shape, dtype = line.rstrip('\n').split('\t')
            if dtype == 'int64':
                state_dict[key] = torch.randint(1, 1000, (), generator=gen)
            else:
                value = torch.randn(ast.literal_eval(shape), generator=gen)
                if key.endswith('running_var'):
                    value = value.abs() + 0.5
                state_dict[key] = value
    return state_dict


def build(config):
    return build_model(osp.join(REPO, 'configs', config))


@functools.lru_cache(maxsize=None)
def convert_model(name):
    """(official state dict, task, our model with the converted weights)."""
    key_list, task, config = MODELS[name]
    official = official_state_dict(key_list)
    model = build(config)
    state_dict = convert_official_state_dict(official, task,
                                             model.state_dict())
    model.load_state_dict(state_dict, strict=True)
    return official, task, model.eval()


@pytest.fixture(params=list(MODELS))
def converted(request):
    return convert_model(request.param)


# Our key -> the official key it comes from, written in the opposite
# direction of the converter. Applied in order, each at most once.
INVERSE_RULES = [
    (r'^backbone\.', '{encoder}'),
    (r'\bstem\.', 'conv_1.block.'),
    (r'conv_1x1_exp\.', 'conv_1x1_exp.block.'),
    (r'layer(\d)\.(\d+)\.expand_conv\.', r'layer_\1.\2.block.exp_1x1.block.'),
    (r'layer(\d)\.(\d+)\.depthwise_conv\.',
     r'layer_\1.\2.block.conv_3x3.block.'),
    (r'layer(\d)\.(\d+)\.linear_conv\.', r'layer_\1.\2.block.red_1x1.block.'),
    (r'layer(\d)\.1\.local_proj\.0\.', r'layer_\1.1.dim_adaptive.0.block.'),
    (r'layer(\d)\.1\.local_proj\.1\.weight',
     r'layer_\1.1.dim_adaptive.1.block.conv.weight'),
    (r'layer(\d)\.1\.global_proj\.', r'layer_\1.1.channel_adaptive.block.'),
    (r'layer(\d)\.1\.fuse\.', r'layer_\1.1.local_global_fusion.block.'),
    (r'layer(\d)\.1\.blocks\.', r'layer_\1.1.spatial_global_rep.'),
    (r'branch_hw\.gcc_1\.meta_kernel', 'meta_kernel_1_H'),
    (r'branch_hw\.gcc_2\.meta_kernel', 'meta_kernel_2_W'),
    (r'branch_wh\.gcc_1\.meta_kernel', 'meta_kernel_1_W'),
    (r'branch_wh\.gcc_2\.meta_kernel', 'meta_kernel_2_H'),
    (r'branch_hw\.pe_1\.meta_embedding', 'meta_pe_1_H'),
    (r'branch_hw\.pe_2\.meta_embedding', 'meta_pe_2_W'),
    (r'branch_wh\.pe_1\.meta_embedding', 'meta_pe_1_W'),
    (r'branch_wh\.pe_2\.meta_embedding', 'meta_pe_2_H'),
    (r'branch_hw\.norm\.', 'pre_Norm_1.'),
    (r'branch_wh\.norm\.', 'pre_Norm_2.'),
    (r'ffn\.3\.', 'ffn.4.'),
    (r'channel_attention\.squeeze\.conv\.', 'ca.fc.0.'),
    (r'channel_attention\.squeeze\.bn\.', 'ca.fc.1.'),
    (r'channel_attention\.excite\.conv\.', 'ca.fc.3.'),
    (r'channel_attention\.excite\.bn\.', 'ca.fc.4.'),
    (r'^head\.fc\.', 'classifier.fc.'),
    (r'^neck\.input_projs\.(\d)\.', r'ssd_heads.\1.proj_layer.block.'),
    (r'^neck\.extra_levels\.0\.(depthwise|pointwise)_conv\.',
     r'extra_layers.os_64.\1_conv.block.'),
    (r'^neck\.extra_levels\.1\.(depthwise|pointwise)_conv\.',
     r'extra_layers.os_128.\1_conv.block.'),
    (r'^neck\.extra_levels\.2\.(depthwise|pointwise)_conv\.',
     r'extra_layers.os_256.\1_conv.block.'),
    (r'^neck\.extra_levels\.3\.1\.conv\.', 'extra_layers.os_-1.1.block.conv.'),
    (r'^bbox_head\.(cls|reg)_convs\.(\d)\.0\.',
     r'ssd_heads.\2.loc_cls_layer.dw_conv.block.'),
    (r'^decode_head\.aspp_modules\.(\d)\.',
     r'seg_head.aspp.aspp_layer.convs.\1.block.'),
    (r'^decode_head\.image_pool\.1\.',
     'seg_head.aspp.aspp_layer.convs.4.aspp_pool.conv_1x1.block.'),
    (r'^decode_head\.bottleneck\.', 'seg_head.aspp.aspp_layer.project.block.'),
    (r'^decode_head\.conv_seg\.',
     'seg_head.classifier.classifier.block.conv.'),
    (r'\.bn\.', '.norm.'),
]


def official_key(key, task, norm_index):
    """The official key that our ``key`` takes its value from."""
    for pattern, replacement in INVERSE_RULES:
        key = re.sub(
            pattern,
            replacement.format(encoder='' if task == 'cls' else 'encoder.'),
            key,
            count=1)
    key = key.replace('depthwise_conv.', 'dw_conv.').replace(
        'pointwise_conv.', 'pw_conv.')
    # A stage's final norm follows its blocks in the official list.
    norm = re.fullmatch(r'(.*)layer(\d)\.1\.norm\.(.+)', key)
    if norm:
        key = (f'{norm.group(1)}layer_{norm.group(2)}.1.spatial_global_rep.'
               f'{norm_index[norm.group(2)]}.{norm.group(3)}')
    return key


def test_every_value_lands_where_the_mapping_says(converted):
    official, task, model = converted
    # The last index of a stage's list: its final norm.
    norm_index = {}
    for key in official:
        match = re.search(r'layer_(\d)\.1\.spatial_global_rep\.(\d+)\.', key)
        if match:
            norm_index[match.group(1)] = max(
                norm_index.get(match.group(1), 0), int(match.group(2)))
    used = set()
    for key, value in model.state_dict().items():
        if re.match(r'bbox_head\.(cls|reg)_convs\.\d\.\d\.(weight|bias)$',
                    key):
            continue  # the split predictors: test_ssd_predictors_...
        source = official_key(key, task, norm_index)
        assert source in official, (key, source)
        expected = official[source]
        if 'meta_' in source:
            expected = expected.reshape(value.shape)
            assert 1 in official[source].shape[:2]
        torch.testing.assert_close(value, expected, rtol=0, atol=0, msg=key)
        used.add(source)
    unused = {
        key
        for key in official if key not in used and not re.search(
            r'(^|\.)residual\.|loc_cls_layer\.(pw_conv\.)?block\.conv', key)
    }
    assert not unused


def test_meta_kernels_and_embeddings_keep_their_direction(converted):
    """Vertical (H) kernels feed the H-first branch's first GCC, horizontal
    ones its second, and the other way round for the W-first branch."""
    official, task, model = converted
    encoder = '' if task == 'cls' else 'encoder.'
    block = model.backbone.layer3[1].blocks[0]
    prefix = f'{encoder}layer_3.1.spatial_global_rep.0.'
    pairs = [(block.branch_hw.gcc_1.meta_kernel, 'meta_kernel_1_H'),
             (block.branch_hw.gcc_2.meta_kernel, 'meta_kernel_2_W'),
             (block.branch_wh.gcc_1.meta_kernel, 'meta_kernel_1_W'),
             (block.branch_wh.gcc_2.meta_kernel, 'meta_kernel_2_H'),
             (block.branch_hw.pe_1.meta_embedding, 'meta_pe_1_H'),
             (block.branch_wh.pe_2.meta_embedding, 'meta_pe_2_H')]
    for ours, name in pairs:
        source = official[prefix + name]
        assert ours.shape == (source.numel() // ours.shape[1], 32)
        assert torch.equal(ours.flatten(), source.flatten())


def test_ssd_predictors_match_the_official_head():
    """Our head's class scores and box deltas, anchor by anchor, equal the
    official fused predictor's outputs (background first there, last in
    mmdet)."""
    official, _, model = convert_model('ssd')
    head = model.bbox_head
    torch.manual_seed(0)
    for level, channels in enumerate(head.in_channels):
        x = torch.randn(1, channels, 3, 3)
        prefix = f'ssd_heads.{level}.loc_cls_layer.'
        if level == 5:
            out = F.conv2d(x, official[prefix + 'block.conv.weight'],
                           official[prefix + 'block.conv.bias'])
        else:
            y = F.conv2d(
                x,
                official[prefix + 'dw_conv.block.conv.weight'],
                padding=1,
                groups=channels)
            norm = prefix + 'dw_conv.block.norm.'
            y = F.batch_norm(y, official[norm + 'running_mean'],
                             official[norm + 'running_var'],
                             official[norm + 'weight'],
                             official[norm + 'bias'])
            out = F.conv2d(y, official[prefix + 'pw_conv.block.conv.weight'],
                           official[prefix + 'pw_conv.block.conv.bias'])
        # Official: (N, C, H, W) -> (N, H * W * A, 4 + 81).
        out = out.permute(0, 2, 3, 1).reshape(1, -1, 85)
        with torch.no_grad():
            scores = head.cls_convs[level](x).permute(0, 2, 3,
                                                      1).reshape(1, -1, 81)
            deltas = head.reg_convs[level](x).permute(0, 2, 3,
                                                      1).reshape(1, -1, 4)
        # float32 sums over up to 512 channels of random weights.
        tolerance = dict(rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(deltas, out[..., :4], **tolerance)
        torch.testing.assert_close(scores[..., :80], out[..., 5:],
                                   **tolerance)
        torch.testing.assert_close(scores[..., 80], out[..., 4], **tolerance)


def test_guess_task():
    assert guess_task(official_state_dict('edgeformer_xs')) == 'cls'
    assert guess_task(official_state_dict('ssd_edgeformer_s')) == 'det'
    assert guess_task(official_state_dict('deeplabv3_edgeformer_s')) == 'seg'
    with pytest.raises(ConversionError, match='Not an official EdgeFormer'):
        guess_task({'backbone.stem.conv.weight': torch.zeros(1)})


@pytest.fixture(scope='module')
def s_classifier():
    return build(MODELS['s'][2]).state_dict()


def test_wrong_task_is_an_error(s_classifier):
    with pytest.raises(ConversionError,
                       match='official SSD detection checkpoint, not '
                       'classification: convert it with --task det'):
        convert_official_state_dict(
            official_state_dict('ssd_edgeformer_s'), 'cls', s_classifier)


def test_missing_unknown_and_misshaped_keys_are_listed(s_classifier):
    official = official_state_dict('edgeformer_s')
    del official['layer_4.1.spatial_global_rep.2.ffn.4.bias']
    official['layer_4.1.extra.weight'] = torch.zeros(3)
    official['classifier.fc.weight'] = torch.zeros(10, 640)
    with pytest.raises(ConversionError) as error:
        convert_official_state_dict(official, 'cls', s_classifier)
    message = str(error.value)
    assert ('official keys without a counterpart (1):\n'
            '  layer_4.1.extra.weight') in message
    assert ('the converted weights against the target: 1 weights of another '
            'shape, 1 missing, 0 unexpected') in message
    assert 'missing: backbone.layer4.1.blocks.2.ffn.3.bias' in message
    assert ('shape (10, 640) for head.fc.weight, expected (1000, 640)'
            ) in message


def test_another_arch_is_a_list_of_shape_mismatches(s_classifier):
    with pytest.raises(ConversionError, match='weights of another shape'):
        convert_official_state_dict(
            official_state_dict('edgeformer_xs'), 'cls', s_classifier)


@pytest.mark.parametrize('wrapper', ['plain', 'model_state_dict',
                                     'state_dict', 'model', 'ddp', 'ema'])
def test_reads_what_the_official_trainer_writes(tmp_path, wrapper):
    official = official_state_dict('edgeformer_xs')
    ema = {key: value + 1 for key, value in official.items()}
    contents = dict(
        plain=official,
        model_state_dict=dict(
            model_state_dict=official, optim_state_dict={}, epoch=3),
        state_dict=dict(state_dict=official),
        model=dict(model=official),
        ddp={f'module.{key}': value
             for key, value in official.items()},
        ema=dict(model_state_dict=ema, ema_state_dict=official))[wrapper]
    path = tmp_path / 'official.pt'
    torch.save(contents, path)
    state_dict = read_official_checkpoint(str(path), use_ema=wrapper == 'ema')
    assert state_dict.keys() == official.keys()
    for key, value in official.items():
        assert torch.equal(state_dict[key], value)


def test_unreadable_files_are_errors(tmp_path):
    good = tmp_path / 'good.pt'
    torch.save(official_state_dict('edgeformer_xs'), good)
    data = good.read_bytes()
    truncated = tmp_path / 'truncated.pt'
    truncated.write_bytes(data[:len(data) // 2])
    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'not a checkpoint' * 100)
    for path in (truncated, garbage):
        with pytest.raises(ConversionError,
                           match='is not a readable PyTorch checkpoint'):
            read_official_checkpoint(str(path))
    not_a_dict = tmp_path / 'list.pt'
    torch.save([torch.zeros(1)], not_a_dict)
    with pytest.raises(ConversionError, match='holds a list'):
        read_official_checkpoint(str(not_a_dict))
    with pytest.raises(ConversionError, match='has no ema_state_dict'):
        read_official_checkpoint(str(good), use_ema=True)


@pytest.mark.slow
def test_tool_writes_a_checkpoint_that_loads_strictly(tmp_path):
    src, dst = tmp_path / 'official.pt', tmp_path / 'out' / 'converted.pth'
    torch.save(official_state_dict('deeplabv3_edgeformer_s'), src)
    result = run_script(TOOL, src, dst)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'official seg checkpoint, 587 keys -> 569 keys' in result.stdout
    checkpoint = torch.load(dst, map_location='cpu', weights_only=True)
    assert checkpoint['meta']['task'] == 'seg'
    model = build(MODELS['deeplabv3'][2])
    model.load_state_dict(checkpoint['state_dict'], strict=True)
    assert not (tmp_path / 'out' / 'converted.pth.partial').exists()


def test_tool_writes_nothing_on_error(tmp_path):
    src, dst = tmp_path / 'official.pt', tmp_path / 'converted.pth'
    torch.save(official_state_dict('ssd_edgeformer_s'), src)
    with pytest.raises(SystemExit) as error:
        run_main(TOOL, src, dst, '--task', 'seg')
    message = str(error.value)
    assert 'not DeepLabV3 segmentation: convert it with --task det' in message
    assert 'Nothing was written.' in message
    assert list(tmp_path.iterdir()) == [src]
