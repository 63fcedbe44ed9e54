"""From the network's outputs to predictions on the original image, as
mmpretrain, mmdet and mmseg compute them."""
from typing import Dict

import numpy as np

from .preprocess import Preprocessed


def classification(outputs: Dict[str, np.ndarray], state: Preprocessed,
                   params: dict) -> dict:
    """The class scores (softmax, computed in the network): the best class
    and the top-k, ties broken by the lower label as ``argmax`` does."""
    scores = outputs['output'].reshape(-1).astype(np.float32)
    order = np.argsort(-scores, kind='stable')[:params.get('topk', 5)]
    result = {
        'task': 'classification',
        'pred_label': int(order[0]),
        'pred_score': float(scores[order[0]]),
        'top5': {
            'labels': order.tolist(),
            'scores': scores[order].tolist()
        },
        'pred_scores': scores,
    }
    names = params.get('class_names')
    if names:
        result['pred_class'] = names[order[0]]
    return result


def detection(outputs: Dict[str, np.ndarray], state: Preprocessed,
              params: dict) -> dict:
    """Decoded, NMS-ed detections from the network, rescaled from the
    network input to the image as mmdet does (divided by the resize's scale
    factor), without boxes of ``min_bbox_size`` or less. (mmdet drops those
    before its NMS; they suppress nothing there, but where more than
    ``max_per_img`` detections pass, the network's count included them.)"""
    if 'detections' in outputs:  # ncnn's DetectionOutput
        rows = outputs['detections'].reshape(-1, 6)
        labels = rows[:, 0].astype(np.int64) - 1  # 0 is the background
        scores, boxes = rows[:, 1], rows[:, 2:6]
    else:  # mmdeploy's ONNX graph: dets (1, K, 5) and labels (1, K)
        dets = outputs['dets'].reshape(-1, 5)
        labels = outputs['labels'].reshape(-1).astype(np.int64)
        # mmdeploy pads with zero-score rows.
        keep = dets[:, 4] > 0
        dets, labels = dets[keep], labels[keep]
        scores, boxes = dets[:, 4], dets[:, :4]
    order = np.argsort(-scores, kind='stable')
    factor = np.asarray(state.scale_factor * 2, np.float32)
    boxes = boxes[order].astype(np.float32) / factor
    scores, labels = scores[order], labels[order]
    min_size = params.get('min_bbox_size', -1)
    if min_size >= 0:  # as mmdet, which drops them before its NMS
        keep = ((boxes[:, 2] - boxes[:, 0] > min_size) &
                (boxes[:, 3] - boxes[:, 1] > min_size))
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    names = params.get('class_names')
    detections = []
    for box, score, label in zip(boxes, scores, labels):
        detection = {
            'bbox': [float(v) for v in box],
            'score': float(score),
            'label': int(label)
        }
        if names:
            detection['class'] = names[label]
        detections.append(detection)
    return {'task': 'detection', 'detections': detections}


def resize_bilinear(x: np.ndarray, size, align_corners: bool) -> np.ndarray:
    """Resize (C, H, W) to ``size`` (h, w) by bilinear interpolation with
    PyTorch's ``F.interpolate`` sampling (as mmseg's ``resize``)."""

    def weights(length_in, length_out):
        out = np.arange(length_out, dtype=np.float32)
        if align_corners:
            scale = (
                np.float32(
                    (length_in - 1) /
                    (length_out - 1)) if length_out > 1 else np.float32(0))
            src = out * scale
        else:
            scale = np.float32(length_in / length_out)
            src = np.maximum((out + np.float32(.5)) * scale - np.float32(.5),
                             0)
        low = np.minimum(src.astype(np.int64), length_in - 1)
        high = np.minimum(low + 1, length_in - 1)
        frac = (src - low).astype(np.float32)
        return low, high, frac

    low, high, frac = weights(x.shape[1], size[0])
    x = x[:, low] * (1 - frac)[None, :, None] + x[:, high] * frac[None, :,
                                                                  None]
    low, high, frac = weights(x.shape[2], size[1])
    return x[:, :, low] * (1 - frac) + x[:, :, high] * frac


def segmentation(outputs: Dict[str, np.ndarray], state: Preprocessed,
                 params: dict) -> dict:
    """The logits at the network input, without the padding, resized to the
    image, then the class of each pixel (mmseg's ``postprocess_result``)."""
    logits = outputs['output'].reshape(outputs['output'].shape[-3:])
    h, w = state.img_shape
    logits = resize_bilinear(logits[:, :h, :w].astype(np.float32),
                             state.ori_shape, params['align_corners'])
    label_map = logits.argmax(axis=0)
    dtype = np.uint8 if logits.shape[0] <= 256 else np.uint16
    return {'task': 'segmentation', 'label_map': label_map.astype(dtype)}


TASKS = {
    'classification': classification,
    'detection': detection,
    'segmentation': segmentation,
}
