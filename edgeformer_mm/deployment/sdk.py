"""mmdeploy SDK files for a deployment directory.

:func:`dump_sdk_info` writes the ``deploy.json``, ``pipeline.json`` and
``detail.json`` that mmdeploy's own ``tools/deploy.py --dump-info`` writes,
so that the SDK (``mmdeploy_runtime``: Classifier, Detector, Segmentor)
loads the directory. They are made by mmdeploy's functions (those of its
``export2SDK``), then adjusted where mmdeploy 1.3.1 describes this
package's models in a way the SDK 1.3.1 does not read as the model config
means it:

* classification: the postprocess ``component`` is the head's class name,
  and the SDK knows only its own heads (``LinearClsHead``,
  ``ConformerHead``, ``MultiLabelLinearClsHead``). The exported graph ends
  with the class probabilities for every single-label mmpretrain head
  (mmdeploy's classifier rewrite applies the softmax), which the SDK's
  ``LinearClsHead`` only ranks: heads such as ``DropoutLinearClsHead``
  become ``LinearClsHead``, multi-label ones ``MultiLabelLinearClsHead``.
* mmpretrain ``ResizeEdge`` (short edge): mmdeploy writes the SDK
  ``Resize`` with ``keep_ratio`` true, which recomputes the size from a
  scale factor and can make the short edge one pixel shorter than
  ``ResizeEdge`` does (e.g. 300x311 -> 71x74 instead of 72x74); with
  ``keep_ratio`` false the SDK computes exactly ``ResizeEdge``'s size. Its
  interpolation, which mmdeploy drops, is kept.
* mmcv ``CenterCrop`` takes ``crop_size`` as (w, h), the SDK as [h, w].
* mmseg: mmdeploy takes the normalisation from the config's top-level
  ``data_preprocessor``; the model's own is used here (the tiny configs
  keep another size at the top level). The SDK pipeline has no padding and
  its ``ResizeMask`` resizes the whole network output to the image, so a
  model whose ``SegDataPreProcessor`` would pad the test input is refused
  (mmseg pads test inputs only as the preprocessor's ``test_cfg`` says,
  ``size`` or ``size_divisor``; its top-level ``size`` and
  ``size_divisor`` pad training batches), as are sliding-window inference
  and ``align_corners`` (the SDK resizes the logits with half-pixel
  centres).
* detection: the SDK's ``ResizeBBox`` reads ``dets`` and ``labels``; a
  graph ending otherwise is refused.

Known differences of the SDK 1.3.1 that no pipeline entry changes (see
tests/test_deployment/test_sdk.py): its ``CenterCrop`` rounds a half-pixel
offset up where mmcv's rounds half to even (a crop one pixel further right
or down when the edge exceeds the crop by 4k+1), and ``ResizeBBox`` clips
the right and bottom edges of boxes to ``width - 1`` and ``height - 1`` of
the original image where mmdet clips to the network input (``width``,
``height`` after rescaling), dropping a box that starts past them.
"""
import copy
import os
import os.path as osp
from typing import Dict, List, Optional, Union

from mmengine.config import Config

SDK_FILES = ('deploy.json', 'pipeline.json', 'detail.json')

# What the SDK 1.3.1 registers (MMDEPLOY_REGISTER_TRANSFORM and
# MMDEPLOY_REGISTER_CODEBASE_COMPONENT in mmdeploy's csrc).
SDK_TRANSFORMS = frozenset({
    'LoadImageFromFile', 'Lift', 'Resize', 'CenterCrop', 'Normalize', 'Pad',
    'ImageToTensor', 'DefaultFormatBundle', 'Collect', 'Compose', 'Fused',
    'FormatShape', 'LetterResize', 'TenCrop', 'ThreeCrop', 'RescaleToHeight',
    'ResizeOCR', 'ShortScaleAspectJitter', 'TopDownAffine',
    'TopDownGetBboxCenterScale'
})
SDK_COMPONENTS = {
    'mmcls':
    frozenset({'LinearClsHead', 'ConformerHead', 'MultiLabelLinearClsHead'}),
    'mmdet':
    frozenset({
        'ResizeBBox', 'ResizeInstanceMask', 'BaseDenseHead', 'RTMDetSepBNHead',
        'YOLOV3Head', 'YOLOv5Head'
    }),
    'mmseg':
    frozenset({'ResizeMask'}),
}


def sdk_info(deploy_cfg: Union[str, Config],
             model_cfg: Union[str, Config],
             checkpoint: Optional[str] = None,
             device: str = 'cpu',
             work_dir: str = '') -> Dict[str, dict]:
    """The contents of the SDK files: ``{'deploy.json': ..,
    'pipeline.json': .., 'detail.json': ..}``.

    Args:
        deploy_cfg (str | Config): The deploy config (configs/mmdeploy).
        model_cfg (str | Config): The model config.
        checkpoint (str, optional): Recorded in ``detail.json`` (``pth``),
            as mmdeploy does; the SDK does not read it.
        device (str): For mmdeploy's task processor (default: 'cpu').
        work_dir (str): Passed to mmdeploy's functions, which use it for
            none of this package's tasks.

    Raises:
        ValueError: If the SDK cannot reproduce the model config's test
            preprocessing or postprocessing (see the module docstring).
    """
    from mmdeploy.backend.sdk.export_info import (get_deploy, get_detail,
                                                  get_pipeline)
    from mmdeploy.utils import Task, get_task_type, load_config

    import edgeformer_mm  # noqa: F401  (registers the modules)

    deploy_cfg, model_cfg = load_config(deploy_cfg, model_cfg)

    # mmdeploy's task processors change the configs they are given (the
    # postprocess pops the head's type): each call gets its own copy.

    def copies():
        return copy.deepcopy(deploy_cfg), copy.deepcopy(model_cfg)

    deploy = get_deploy(*copies(), work_dir, device)
    pipeline = get_pipeline(*copies(), work_dir, device)
    detail = get_detail(*copies(), pth=checkpoint or '')

    preprocess, _, postprocess = pipeline['pipeline']['tasks']
    transforms = preprocess['transforms']
    task = get_task_type(deploy_cfg)
    if task == Task.CLASSIFICATION:
        _classification(transforms, postprocess, model_cfg)
    elif task == Task.OBJECT_DETECTION:
        _detection(deploy_cfg)
    elif task == Task.SEGMENTATION:
        _segmentation(transforms, postprocess, model_cfg)
    else:
        raise ValueError(f'no SDK files for the task {task.value}')
    unknown = [
        t['type'] for t in transforms if t['type'] not in SDK_TRANSFORMS
    ]
    if unknown:
        raise ValueError(f'the mmdeploy SDK has no transform {unknown}')
    module = postprocess['module']
    if postprocess['component'] not in SDK_COMPONENTS.get(module, ()):
        raise ValueError(f'the mmdeploy SDK has no {module} postprocess '
                         f'component {postprocess["component"]}')
    return {
        'deploy.json': _plain(deploy),
        'pipeline.json': _plain(pipeline),
        'detail.json': _plain(detail)
    }


def dump_sdk_info(deploy_cfg: Union[str, Config],
                  model_cfg: Union[str, Config],
                  work_dir: str,
                  checkpoint: Optional[str] = None,
                  device: str = 'cpu') -> List[str]:
    """Write ``deploy.json``, ``pipeline.json`` and ``detail.json`` for the
    mmdeploy SDK to ``work_dir`` (as mmdeploy's ``export2SDK``, adjusted as
    the module docstring says); their paths.

    The SDK finds the backend files by the deploy config's names
    (``end2end.onnx``; ``end2end.param`` and ``end2end.bin`` for ncnn) in
    the same directory. Nothing is written if the SDK cannot run the model
    as its config does (``ValueError``).
    """
    return write_sdk_info(
        sdk_info(deploy_cfg, model_cfg, checkpoint, device, work_dir),
        work_dir)


def write_sdk_info(info: Dict[str, dict], work_dir: str) -> List[str]:
    """Write the files of :func:`sdk_info` to ``work_dir``; their paths."""
    import mmengine

    os.makedirs(work_dir, exist_ok=True)
    paths = []
    for name in SDK_FILES:
        path = osp.join(work_dir, name)
        mmengine.dump(info[name], path, sort_keys=False, indent=4)
        paths.append(path)
    return paths


def _data_preprocessor(model_cfg: Config) -> dict:
    """The data preprocessor the model is built with: the model's own, else
    the config's top-level one (as mmpretrain's ``get_model`` does)."""
    return dict(
        model_cfg.model.get('data_preprocessor')
        or model_cfg.get('data_preprocessor') or {})


def _classification(transforms: list, postprocess: dict, model_cfg: Config):
    from mmpretrain.models.heads import (ClsHead, ConformerHead,
                                         MultiLabelClsHead)
    from mmpretrain.registry import MODELS

    head = MODELS.get(model_cfg.model.head.type)
    if head is None:
        raise ValueError(f'unknown head {model_cfg.model.head.type}')
    if issubclass(head, MultiLabelClsHead):
        postprocess['component'] = 'MultiLabelLinearClsHead'
    elif issubclass(head, ConformerHead):
        postprocess['component'] = 'ConformerHead'
    elif issubclass(head, ClsHead):
        # The graph ends with the softmax (mmdeploy's classifier rewrite);
        # the SDK's LinearClsHead ranks the scores as they are.
        postprocess['component'] = 'LinearClsHead'
    else:
        raise ValueError(f'the mmdeploy SDK has no postprocess for '
                         f'{head.__name__}')

    # mmdeploy's list keeps the test pipeline's order without its random
    # transforms; pair its resizes with the ResizeEdge entries.
    edges = [t for t in model_cfg.test_pipeline if t['type'] == 'ResizeEdge']
    for transform in transforms:
        kind = transform['type']
        if kind == 'Resize' and list(transform.get('size', ()))[-1:] == [-1]:
            edge = edges.pop(0)
            if edge.get('edge', 'short') != 'short':
                raise ValueError('the mmdeploy SDK resizes the short edge '
                                 f'only, not as {dict(edge)}')
            _check_cv2(edge)
            transform.clear()
            transform.update(
                type='Resize',
                keep_ratio=False,
                size=[edge['scale'], -1],
                interpolation=edge.get('interpolation', 'bilinear'))
        elif kind == 'Resize':
            _check_cv2(transform)
        elif kind == 'CenterCrop':
            if transform.get('auto_pad'):
                raise ValueError('the mmdeploy SDK CenterCrop does not pad')
            size = transform['crop_size']
            if not isinstance(size, int):
                transform['crop_size'] = [size[1], size[0]]  # [h, w]
        elif kind == 'Normalize':
            preprocessor = _data_preprocessor(model_cfg)
            transform.update(
                to_rgb=bool(preprocessor.get('to_rgb', False)),
                mean=list(preprocessor.get('mean', [0, 0, 0])),
                std=list(preprocessor.get('std', [1, 1, 1])))


def _check_cv2(transform: dict):
    if transform.get('backend', 'cv2') != 'cv2':
        raise ValueError('the mmdeploy SDK resizes as cv2, not as '
                         f'{transform["backend"]}')


def _detection(deploy_cfg: Config):
    outputs = list(deploy_cfg.onnx_config.output_names)
    if outputs != ['dets', 'labels']:
        raise ValueError(
            "the mmdeploy SDK's ResizeBBox reads a graph ending with "
            f"'dets' and 'labels', this one ends with {outputs}")


def _segmentation(transforms: list, postprocess: dict, model_cfg: Config):
    model = model_cfg.model
    mode = (model.get('test_cfg') or {}).get('mode', 'whole')
    if mode != 'whole':
        raise ValueError(f"the mmdeploy SDK runs 'whole' inference, not "
                         f'{mode!r}')
    head = model.decode_head
    head = head[-1] if isinstance(head, (list, tuple)) else head
    if head.get('align_corners') and not postprocess['params'].get(
            'with_argmax', True):
        raise ValueError('the mmdeploy SDK resizes the logits with '
                         'align_corners=False')
    preprocessor = _data_preprocessor(model_cfg)
    resize = transforms[1]
    # SegDataPreProcessor pads test inputs as its test_cfg says (the
    # top-level size and size_divisor are for training batches only).
    test_cfg = preprocessor.get('test_cfg') or {}
    size = test_cfg.get('size')
    divisor = test_cfg.get('size_divisor')
    if size or divisor:
        # The SDK does not pad, and ResizeMask would resize padded logits
        # whole: fine only where SegDataPreProcessor pads nothing.
        fixed = None
        if not resize.get('keep_ratio', False):
            width, height = resize['size']
            fixed = (height, width)
        if (fixed is None or (size and any(s > f for s, f in zip(size, fixed)))
                or (divisor and (fixed[0] % divisor or fixed[1] % divisor))):
            raise ValueError(
                'the data preprocessor pads the test input (test_cfg='
                f'{dict(test_cfg)}) and the mmdeploy SDK does not: resize '
                'to that size (keep_ratio=False) in the test pipeline')
    for transform in transforms:
        if transform['type'] == 'Resize':
            _check_cv2(transform)
        if transform['type'] == 'Normalize':
            transform.update(
                mean=list(preprocessor.get('mean', [0, 0, 0])),
                std=list(preprocessor.get('std', [1, 1, 1])),
                to_rgb=bool(preprocessor.get('bgr_to_rgb', False)))


def _plain(value):
    """``value`` with Config dicts and tuples as plain dicts and lists."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
