"""Write deployment bundles: the backend files and ``bundle.json``, the
description of everything a device needs to run them (read by
``edgeformer_runtime``; the format is in docs/deployment.md).

The preprocessing is translated from the model config's test pipeline and
data preprocessor; a step without an exact equivalent in the runtime is
refused with its name rather than approximated.
"""
import json
import os
import os.path as osp
from importlib import metadata
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import DATASETS, init_default_scope

from edgeformer_runtime.bundle import (FORMAT, FORMAT_VERSION, MANIFEST,
                                       OUTPUTS, Bundle, file_digest)
from ..utils.checkpoint import allow_mmengine_checkpoints

# mmdeploy's task names and the bundle's.
TASK_NAMES = {
    'Classification': 'classification',
    'ObjectDetection': 'detection',
    'Segmentation': 'segmentation',
}
# Test pipeline steps that do not change the image.
PASSIVE_STEPS = ('LoadAnnotations', 'PackInputs', 'PackDetInputs',
                 'PackSegInputs', 'PackClsInputs')
VERSIONED_PACKAGES = ('edgeformer_mm', 'torch', 'mmcv', 'mmengine',
                      'mmpretrain', 'mmdet', 'mmsegmentation', 'mmdeploy',
                      'onnx', 'onnxruntime', 'pnnx', 'ncnn', 'mnn',
                      'litert-torch', 'ai-edge-litert', 'executorch')


def _defaults(step: dict, **defaults) -> dict:
    return {**defaults, **step}


def _size_hw(size) -> List[int]:
    """[height, width] from an OpenMMLab (width, height) pair or an int."""
    if isinstance(size, int):
        return [size, size]
    width, height = size
    return [height, width]


def _resize_backend(step: dict) -> str:
    """mmcv's resize backend of a step: cv2 (its default) or pillow."""
    backend = step.get('backend', 'cv2')
    if backend not in ('cv2', 'pillow'):
        raise ValueError(f'the test pipeline step {step} resizes with '
                         f'{backend}; bundles support cv2 and pillow')
    return backend


def preprocess_steps(model_cfg: Config) -> List[dict]:
    """The bundle's preprocessing for ``model_cfg``: its test pipeline,
    then the data preprocessor's normalization and padding.

    Raises:
        ValueError: A step the runtime cannot reproduce exactly.
    """
    steps = []
    for step in model_cfg.test_dataloader.dataset.pipeline:
        name = step['type'].split('.')[-1]
        if name in PASSIVE_STEPS:
            continue
        if name == 'LoadImageFromFile':
            step = _defaults(
                step,
                color_type='color',
                imdecode_backend='cv2',
                channel_order='bgr',
                to_float32=False)
            if (step['color_type'], step['imdecode_backend'],
                    step['channel_order']) != ('color', 'cv2', 'bgr'):
                raise ValueError(
                    'bundles decode images as mmcv does by default (color, '
                    f'cv2, bgr), not as {step}')
            steps.append({'type': 'load', 'channel_order': 'bgr'})
        elif name == 'ResizeEdge':
            step = _defaults(step, edge='short', interpolation='bilinear')
            steps.append({
                'type': 'resize_edge',
                'edge': step['edge'],
                'scale': step['scale'],
                'interpolation': step['interpolation'],
                'backend': _resize_backend(step)
            })
        elif name == 'Resize' and 'scale' in step:
            step = _defaults(step, keep_ratio=False, interpolation='bilinear')
            steps.append({
                'type': 'resize',
                'size': _size_hw(step['scale']),
                'keep_ratio': step['keep_ratio'],
                'interpolation': step['interpolation'],
                'backend': _resize_backend(step)
            })
        elif name == 'CenterCrop' and not step.get('auto_pad', False):
            steps.append({
                'type': 'center_crop',
                'size': _size_hw(step['crop_size'])
            })
        else:
            raise ValueError(f'the test pipeline step {step} has no exact '
                             'equivalent in the bundle runtime')
    if not steps or steps[0]['type'] != 'load':
        raise ValueError('the test pipeline must start with '
                         'LoadImageFromFile')
    steps += _data_preprocessor_steps(model_cfg)
    return steps


def _data_preprocessor_steps(model_cfg: Config) -> List[dict]:
    preprocessor = model_cfg.model.get('data_preprocessor') or model_cfg.get(
        'data_preprocessor') or {}
    to_rgb = bool(
        preprocessor.get('to_rgb') or preprocessor.get('bgr_to_rgb')
        or preprocessor.get('rgb_to_bgr'))
    steps = [{
        'type': 'normalize',
        'mean': list(preprocessor.get('mean') or [0., 0., 0.]),
        'std': list(preprocessor.get('std') or [1., 1., 1.]),
        'to_rgb': to_rgb
    }]
    if preprocessor.get('type', '').split('.')[-1] == 'SegDataPreProcessor':
        # mmseg pads test images only as its test_cfg says.
        test_cfg = preprocessor.get('test_cfg') or {}
        size, divisor = test_cfg.get('size'), test_cfg.get('size_divisor')
        value = preprocessor.get('pad_val', 0)
    else:
        size, divisor = None, preprocessor.get('pad_size_divisor', 1)
        value = preprocessor.get('pad_value', 0)
    if size:
        steps.append({'type': 'pad', 'size': list(size), 'value': value})
    elif divisor and divisor > 1:
        steps.append({'type': 'pad', 'size_divisor': divisor, 'value': value})
    return steps


def postprocess_params(task: str, model_cfg: Config,
                       dataset_meta: dict) -> dict:
    """The bundle's postprocessing parameters for ``task`` (a bundle task
    name): class names (and palette) from ``dataset_meta``, and the
    detection and segmentation settings of ``model_cfg``."""
    names = dataset_meta.get('classes')
    params = {'class_names': list(names) if names else None}
    if task == 'classification':
        params['topk'] = 5
        return params
    palette = dataset_meta.get('palette')
    params['palette'] = [list(color) for color in palette] if palette else None
    if task == 'segmentation':
        params['align_corners'] = bool(
            model_cfg.model.decode_head.get('align_corners', False))
        return params
    test_cfg = model_cfg.model.test_cfg
    coder = model_cfg.model.bbox_head.bbox_coder
    params.update(
        score_thr=test_cfg.get('score_thr', 0.),
        nms_iou=test_cfg.nms.iou_threshold,
        nms_pre=test_cfg.get('nms_pre', -1),
        max_per_img=test_cfg.get('max_per_img', -1),
        min_bbox_size=test_cfg.get('min_bbox_size', -1),
        box_coder={
            'type': coder.type,
            'means': list(coder.get('target_means', [0., 0., 0., 0.])),
            'stds': list(coder.get('target_stds', [1., 1., 1., 1.]))
        })
    return params


def dataset_meta(model_cfg: Config, checkpoint: str) -> dict:
    """``classes`` and ``palette``: those a training run saved in the
    checkpoint, else those of the config's test data set."""
    allow_mmengine_checkpoints()
    meta = torch.load(checkpoint, map_location='cpu').get('meta') or {}
    if meta.get('dataset_meta'):
        return dict(meta['dataset_meta'])
    dataset = model_cfg.test_dataloader.dataset
    init_default_scope(model_cfg.get('default_scope', 'mmengine'))
    dataset_cls = DATASETS.get(dataset.type)
    return {
        **getattr(dataset_cls, 'METAINFO', {}),
        **(dataset.get('metainfo') or {})
    }


def package_versions() -> dict:
    """The installed versions of the packages a bundle depends on."""
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def write_bundle(work_dir: str,
                 task: str,
                 backend: str,
                 files: Sequence[str],
                 input_size: Optional[Tuple[int, int]],
                 model_cfg: Config,
                 meta: dict,
                 model_name: str,
                 precision: str = 'fp32',
                 quantization: Optional[dict] = None,
                 level_priors: Optional[List[int]] = None) -> Bundle:
    """Describe the converted files in ``work_dir`` by ``bundle.json`` and
    return the bundle, loaded and verified as a device would.

    Args:
        work_dir (str): The directory of the model files.
        task (str): mmdeploy's task name ('Classification', ...).
        backend (str): 'ncnn' or 'onnxruntime'.
        files (list[str]): The files of the bundle in ``work_dir``:
            the backend's, and mmdeploy's SDK files if any.
        input_size (tuple[int, int], optional): (H, W) of a static network;
            None for a dynamic one.
        model_cfg (Config): The model config.
        meta (dict): ``classes`` and ``palette`` of the data set (see
            :func:`dataset_meta`).
        model_name (str): Usually the config's file name without extension.
        precision (str): 'fp32', 'fp16' (the stored weights) or 'int8'.
        quantization (dict, optional): How an int8 model was quantized
            (calibration set and method, layers kept in fp32, the share of
            the MACs in int8), recorded as it is.
        level_priors (list[int], optional): Detection graphs that end in the
            boxes and scores of all priors (NMS on the host): the number of
            priors of each level (see ``detection_level_priors``).
    """
    task = TASK_NAMES[task]
    height, width = input_size or (None, None)
    manifest = {
        'format': FORMAT,
        'format_version': FORMAT_VERSION,
        'task': task,
        'model': model_name,
        'backend': backend,
        'precision': precision,
        'input': {
            'name': 'input',
            'shape': [1, 3, height, width]
        },
        'outputs': OUTPUTS[task, backend],
        'files': {
            osp.basename(path): file_digest(path)
            for path in files
        },
        'preprocess': preprocess_steps(model_cfg),
        'postprocess': postprocess_params(task, model_cfg, meta),
        'versions': package_versions(),
    }
    if quantization is not None:
        manifest['quantization'] = quantization
    if level_priors is not None:
        manifest['postprocess']['level_priors'] = list(level_priors)
    path = osp.join(work_dir, MANIFEST)
    with open(path + '.partial', 'w', encoding='utf-8') as f:
        json.dump(manifest, f, indent=2)
    os.replace(path + '.partial', path)
    return Bundle.load(work_dir)
