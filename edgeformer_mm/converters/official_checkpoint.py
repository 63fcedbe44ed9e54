"""Convert the official EdgeFormer (ml-cvnets) checkpoints to this package.

The official repository hkzhang91/EdgeFormer distributes EdgeFormer-S
weights for classification, SSD detection and DeepLabV3 segmentation with
ml-cvnets key names. :func:`convert_official_state_dict` renames every key,
reshapes the GCC meta kernels and positional embeddings to ``(C, K)`` and
rearranges the SSD predictors for mmdet's head, so that the converted model
computes what the official one computes. Nothing is loaded partially: any
official key left unmatched, or any key of the target model left unfilled,
is a :class:`ConversionError` that lists them.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from ..utils.state_dict import compare_state_dicts

TASKS = ('cls', 'det', 'seg')
TASK_NAMES = dict(
    cls='classification', det='SSD detection', seg='DeepLabV3 segmentation')


class ConversionError(ValueError):
    """An official checkpoint that cannot be converted as asked."""


def _listed(title: str, keys: List[str], limit: int = 20) -> str:
    shown = ''.join(f'\n  {key}' for key in keys[:limit])
    more = f'\n  ... and {len(keys) - limit} more' if len(keys) > limit else ''
    return f'{title} ({len(keys)}):{shown}{more}'


def read_official_checkpoint(path: str, use_ema: bool = False
                             ) -> Dict[str, Tensor]:
    """The model state dict inside an official checkpoint file.

    Accepts what the official trainer writes: a plain state dict (the
    released ``checkpoint_ema_avg.pt``, ``*_best.pt``, ``*_ema.pt``), or a
    training checkpoint with ``model_state_dict`` and ``ema_state_dict``
    (``use_ema`` picks the latter); also ``state_dict`` and ``model``
    wrappers and DDP's ``module.`` prefix.

    Raises:
        ConversionError: The file is unreadable (truncated, corrupt, not a
            PyTorch file) or holds no state dict of tensors.
    """
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises many kinds on a bad file
        raise ConversionError(
            f'{path} is not a readable PyTorch checkpoint '
            f'({type(error).__name__}: {error})') from error
    if not isinstance(checkpoint, dict):
        raise ConversionError(f'{path} holds a {type(checkpoint).__name__}, '
                              'not a state dict')
    wrappers = (('ema_state_dict', 'model_state_dict') if use_ema else
                ('model_state_dict', 'state_dict', 'model'))
    for wrapper in wrappers:
        if isinstance(checkpoint.get(wrapper), dict):
            checkpoint = checkpoint[wrapper]
            break
    else:
        if use_ema:
            raise ConversionError(f'{path} has no ema_state_dict')
    if not checkpoint or not all(
            isinstance(value, Tensor) for value in checkpoint.values()):
        raise ConversionError(
            f'{path} holds no state dict of tensors (keys: '
            f'{sorted(checkpoint)[:10]})')
    if all(key.startswith('module.') for key in checkpoint):
        checkpoint = {key[len('module.'):]: v for key, v in checkpoint.items()}
    return checkpoint


def guess_task(state_dict: Dict[str, Tensor]) -> str:
    """'det', 'seg' or 'cls', from the official keys."""
    if any(key.startswith('ssd_heads.') for key in state_dict):
        return 'det'
    if any(key.startswith('seg_head.') for key in state_dict):
        return 'seg'
    if 'classifier.fc.weight' in state_dict:
        return 'cls'
    raise ConversionError(
        'Not an official EdgeFormer checkpoint: it has none of the keys '
        "'classifier.fc.weight' (classification), 'ssd_heads.*' "
        "(detection) or 'seg_head.*' (segmentation); first keys: "
        f'{list(state_dict)[:5]}')


def _conv_norm(name: str) -> str:
    """ml-cvnets ``ConvLayer`` (``block.conv``/``block.norm``) to mmcv's
    ``ConvModule`` (``conv``/``bn``)."""
    return name.replace('block.conv.', 'conv.').replace('block.norm.', 'bn.')


# Official GCC-CA block attribute -> ours. The official block runs the
# first half of the channels through H then W, the second through W then H.
_GCC_BLOCK = {
    'meta_kernel_1_H': 'branch_hw.gcc_1.meta_kernel',
    'meta_kernel_2_W': 'branch_hw.gcc_2.meta_kernel',
    'meta_kernel_1_W': 'branch_wh.gcc_1.meta_kernel',
    'meta_kernel_2_H': 'branch_wh.gcc_2.meta_kernel',
    'meta_pe_1_H': 'branch_hw.pe_1.meta_embedding',
    'meta_pe_2_W': 'branch_hw.pe_2.meta_embedding',
    'meta_pe_1_W': 'branch_wh.pe_1.meta_embedding',
    'meta_pe_2_H': 'branch_wh.pe_2.meta_embedding',
}
_GCC_BLOCK_PREFIXES = {
    'pre_Norm_1.': 'branch_hw.norm.',
    'pre_Norm_2.': 'branch_wh.norm.',
    'ffn.0.': 'ffn.0.',
    'ffn.1.': 'ffn.1.',
    'ffn.4.': 'ffn.3.',
    'ca.fc.0.': 'channel_attention.squeeze.conv.',
    'ca.fc.1.': 'channel_attention.squeeze.bn.',
    'ca.fc.3.': 'channel_attention.excite.conv.',
    'ca.fc.4.': 'channel_attention.excite.bn.',
}
_NORM_PARAM = r'(weight|bias|running_mean|running_var|num_batches_tracked)'


def _backbone_key(key: str) -> Optional[Tuple[str, bool]]:
    """``(our backbone key, whether the value is a kernel or PE to reshape
    to (C, K))`` for an official encoder key, or None."""
    if key.startswith('conv_1.'):
        return 'stem.' + _conv_norm(key[len('conv_1.'):]), False
    if key.startswith('conv_1x1_exp.'):
        return 'conv_1x1_exp.' + _conv_norm(key[len('conv_1x1_exp.'):]), False
    match = re.fullmatch(r'layer_(\d)\.(\d+)\.(.+)', key)
    if not match:
        return None
    layer, index, rest = match.groups()
    prefix = f'layer{layer}.{index}.'
    mv2 = re.fullmatch(r'block\.(exp_1x1|conv_3x3|red_1x1)\.(.+)', rest)
    if mv2:
        part = dict(exp_1x1='expand_conv', conv_3x3='depthwise_conv',
                    red_1x1='linear_conv')[mv2.group(1)]
        return f'{prefix}{part}.{_conv_norm(mv2.group(2))}', False
    if rest.startswith('dim_adaptive.0.'):
        return prefix + 'local_proj.0.' + _conv_norm(rest[15:]), False
    if rest == 'dim_adaptive.1.block.conv.weight':
        return prefix + 'local_proj.1.weight', False
    if rest.startswith('channel_adaptive.'):
        return prefix + 'global_proj.' + _conv_norm(rest[17:]), False
    if rest.startswith('local_global_fusion.'):
        return prefix + 'fuse.' + _conv_norm(rest[20:]), False
    norm = re.fullmatch(rf'spatial_global_rep\.\d+\.{_NORM_PARAM}', rest)
    if norm:
        # The stage's final norm sits after the blocks in the same list.
        return f'{prefix}norm.{norm.group(1)}', False
    block = re.fullmatch(r'spatial_global_rep\.(\d+)\.(.+)', rest)
    if not block:
        return None
    block_prefix = f'{prefix}blocks.{block.group(1)}.'
    name = block.group(2)
    if name in _GCC_BLOCK:
        return block_prefix + _GCC_BLOCK[name], True
    for official, ours in _GCC_BLOCK_PREFIXES.items():
        if name.startswith(official):
            return block_prefix + ours + name[len(official):], False
    return None


def _ssd_predictor(weight: Tensor, num_anchors: int
                   ) -> Tuple[Tensor, Tensor]:
    """Split a fused official predictor (per anchor: 4 box deltas, then the
    background and the class scores) into mmdet's box and class predictors
    (per anchor: the class scores, background last)."""
    per_anchor = weight.view(num_anchors, -1, *weight.shape[1:])
    boxes = per_anchor[:, :4]
    scores = torch.cat([per_anchor[:, 5:], per_anchor[:, 4:5]], dim=1)
    return (boxes.reshape(-1, *weight.shape[1:]).clone(),
            scores.reshape(-1, *weight.shape[1:]).clone())


def _det_keys(key: str, value: Tensor, target: Dict[str, Tensor]
              ) -> Optional[Dict[str, Tensor]]:
    """Our keys and values for an official SSD key (outside the encoder);
    the number of anchors per level comes from ``target``."""
    extra = re.fullmatch(r'extra_layers\.os_(\d+)\.(dw|pw)_conv\.(.+)', key)
    if extra:
        level = {'64': 0, '128': 1, '256': 2}.get(extra.group(1))
        if level is None:
            return None
        part = 'depthwise_conv' if extra.group(2) == 'dw' else 'pointwise_conv'
        return {
            f'neck.extra_levels.{level}.{part}.{_conv_norm(extra.group(3))}':
            value
        }
    if key == 'extra_layers.os_-1.1.block.conv.weight':
        return {'neck.extra_levels.3.1.conv.weight': value}
    head = re.fullmatch(r'ssd_heads\.(\d)\.(.+)', key)
    if not head:
        return None
    level, rest = int(head.group(1)), head.group(2)
    if rest.startswith('proj_layer.'):
        return {
            f'neck.input_projs.{level}.{_conv_norm(rest[11:])}': value
        }
    if rest.startswith('loc_cls_layer.dw_conv.'):
        # One official depthwise conv feeds both of mmdet's branches.
        name = _conv_norm(rest[len('loc_cls_layer.dw_conv.'):])
        return {
            f'bbox_head.{branch}_convs.{level}.0.{name}': value.clone()
            for branch in ('cls', 'reg')
        }
    predictor = re.fullmatch(
        r'loc_cls_layer\.(?:pw_conv\.)?block\.conv\.(weight|bias)', rest)
    if not predictor:
        return None
    # The plain 1x1 predictor level is one conv, the others a separable
    # conv whose 1x1 part is the second module of mmdet's branches.
    position = 1 if 'pw_conv' in rest else 0
    reg_weight = f'bbox_head.reg_convs.{level}.{position}.weight'
    if reg_weight not in target:
        return None
    boxes, scores = _ssd_predictor(value, target[reg_weight].shape[0] // 4)
    name = predictor.group(1)
    return {
        f'bbox_head.reg_convs.{level}.{position}.{name}': boxes,
        f'bbox_head.cls_convs.{level}.{position}.{name}': scores,
    }


def _seg_keys(key: str, value: Tensor) -> Optional[Dict[str, Tensor]]:
    """Our keys and values for an official DeepLabV3 key (outside the
    encoder)."""
    aspp = 'seg_head.aspp.aspp_layer.'
    if key.startswith(aspp + 'convs.4.aspp_pool.conv_1x1.'):
        rest = key[len(aspp + 'convs.4.aspp_pool.conv_1x1.'):]
        return {f'decode_head.image_pool.1.{_conv_norm(rest)}': value}
    branch = re.fullmatch(re.escape(aspp) + r'convs\.([0-3])\.(.+)', key)
    if branch:
        return {
            f'decode_head.aspp_modules.{branch.group(1)}.'
            f'{_conv_norm(branch.group(2))}': value
        }
    if key.startswith(aspp + 'project.'):
        rest = _conv_norm(key[len(aspp + 'project.'):])
        return {f'decode_head.bottleneck.{rest}': value}
    classifier = re.fullmatch(
        r'seg_head\.classifier\.classifier\.block\.conv\.(weight|bias)', key)
    if classifier:
        return {f'decode_head.conv_seg.{classifier.group(1)}': value}
    return None


def convert_official_state_dict(state_dict: Dict[str, Tensor], task: str,
                                target: Dict[str, Tensor]
                                ) -> 'OrderedDict[str, Tensor]':
    """Convert an official state dict to the keys of ``target``.

    Args:
        state_dict (dict): Official keys and values.
        task (str): ``'cls'``, ``'det'`` or ``'seg'``.
        target (dict): The state dict of the model to load into (e.g.
            ``model.state_dict()`` of a config of this package): its keys
            and shapes are what the result must have, and the detector's
            number of anchors per level comes from it.

    Returns:
        OrderedDict: The converted state dict, in ``target``'s key order.

    Raises:
        ConversionError: The task does not fit the keys, an official key has
            no counterpart, a target key stays unfilled or a shape differs.
    """
    if task not in TASKS:
        raise ConversionError(f'task must be one of {TASKS}, got {task!r}')
    found = guess_task(state_dict)
    if found != task:
        raise ConversionError(
            f'This is an official {TASK_NAMES[found]} checkpoint, not '
            f'{TASK_NAMES[task]}: convert it with --task {found}')
    encoder = '' if task == 'cls' else 'encoder.'
    converted, unmatched = {}, []
    for key, value in state_dict.items():
        if key.startswith(encoder + 'residual.'):
            continue  # an alias of layer_5.0 that the official model keeps
        new = None
        if key.startswith(encoder):
            mapped = _backbone_key(key[len(encoder):])
            if mapped is not None:
                name, is_meta = mapped
                if is_meta:
                    # (C, 1, K, 1), (C, 1, 1, K), (1, C, K, 1) or
                    # (1, C, 1, K) -> (C, K)
                    value = value.reshape(-1, value.shape[2] * value.shape[3])
                new = {'backbone.' + name: value}
        if new is None and task == 'cls' and key.startswith('classifier.fc.'):
            new = {'head.fc.' + key[len('classifier.fc.'):]: value}
        if new is None and task == 'det':
            new = _det_keys(key, value, target)
        if new is None and task == 'seg':
            new = _seg_keys(key, value)
        if new is None:
            unmatched.append(key)
        else:
            converted.update(new)

    mismatch = compare_state_dicts(converted, target)
    if unmatched or mismatch:
        problems = [_listed('official keys without a counterpart', unmatched)
                    ] if unmatched else []
        if mismatch:
            problems.append('the converted weights against the target: ' +
                            mismatch.report())
        raise ConversionError('The official checkpoint does not convert to '
                              'the target model:\n' + '\n'.join(problems))
    return OrderedDict((key, converted[key]) for key in target)
