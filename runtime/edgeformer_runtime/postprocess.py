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
    elif 'boxes' in outputs:  # decoded boxes and class scores of all priors
        boxes, scores, labels = multiclass_nms(outputs['boxes'].reshape(-1, 4),
                                               outputs['scores'][0], params)
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


def multiclass_nms(boxes: np.ndarray, scores: np.ndarray, params: dict):
    """mmdet's selection of a dense head's detections (``_predict_by_feat_
    single`` and ``_bbox_post_process``): on each level (``level_priors``
    boxes), the ``nms_pre`` best (box, class) pairs scoring more than
    ``score_thr``; then a greedy NMS per class (IoU above ``nms_iou``
    suppresses) and the ``max_per_img`` best.

    Args:
        boxes (np.ndarray): (P, 4) boxes (x1, y1, x2, y2) of all priors.
        scores (np.ndarray): (P, C) their class scores.
        params (dict): The bundle's postprocessing parameters.

    Returns:
        tuple[np.ndarray]: The boxes, scores and labels kept, best first.
    """
    nms_pre = params.get('nms_pre', -1)
    candidates = []
    start = 0
    for count in params.get('level_priors') or [len(boxes)]:
        level = scores[start:start + count]
        prior, label = np.nonzero(level > params['score_thr'])
        level_scores = level[prior, label]
        order = np.argsort(-level_scores, kind='stable')
        if nms_pre > 0:
            order = order[:nms_pre]
        candidates.append((prior[order] + start, label[order]))
        start += count
    prior = np.concatenate([c[0] for c in candidates])
    label = np.concatenate([c[1] for c in candidates])
    kept = []
    for cls in np.unique(label):
        index = np.nonzero(label == cls)[0]
        kept.extend(index[_nms(boxes[prior[index]], scores[prior[index], cls],
                               params['nms_iou'])])
    kept = np.asarray(kept, np.int64)
    kept = kept[np.argsort(-scores[prior[kept], label[kept]], kind='stable')]
    if params.get('max_per_img', -1) > 0:
        kept = kept[:params['max_per_img']]
    prior, label = prior[kept], label[kept]
    return boxes[prior], scores[prior, label], label


def _nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float):
    """Indices of the boxes a greedy NMS keeps, best first (mmcv's ``nms``:
    areas without the +1 offset; IoU above the threshold suppresses)."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind='stable')
    keep = []
    while order.size:
        best, order = order[0], order[1:]
        keep.append(best)
        width = np.clip(
            np.minimum(x2[best], x2[order]) - np.maximum(x1[best], x1[order]),
            0, None)
        height = np.clip(
            np.minimum(y2[best], y2[order]) - np.maximum(y1[best], y1[order]),
            0, None)
        inter = width * height
        iou = inter / np.maximum(areas[best] + areas[order] - inter, 1e-12)
        order = order[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


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
