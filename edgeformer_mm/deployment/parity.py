"""How far a backend's outputs are from PyTorch's, per task."""
import contextlib
import copy
import io
from typing import Dict

import torch
from mmengine.registry import DefaultScope
from torch import Tensor


def difference(expected: Tensor, actual: Tensor) -> Dict[str, float]:
    """Largest absolute difference, and that relative to the largest
    expected magnitude."""
    expected, actual = expected.double(), actual.double()
    if expected.shape != actual.shape:
        raise ValueError(f'output shapes differ: expected {expected.shape}, '
                         f'got {actual.shape}')
    largest = (actual - expected).abs().max().item()
    return dict(abs=largest, rel=largest / expected.abs().max().item())


def label_agreement(expected_logits: Tensor, actual_logits: Tensor) -> float:
    """Share of pixels whose argmax class is the same, logits (N, C, H, W).
    """
    same = expected_logits.argmax(dim=1) == actual_logits.argmax(dim=1)
    return same.double().mean().item()


def match_detections(expected, actual,
                     scale_factor=(1., 1.)) -> Dict[str, float]:
    """Pair each expected detection with an actual one of the same label.

    Expected detections are taken by descending score; each is paired with
    the unpaired actual detection of its label whose box is nearest (largest
    coordinate difference).

    Args:
        expected (InstanceData): PyTorch's ``pred_instances``.
        actual (InstanceData): The backend's.
        scale_factor (tuple[float, float]): (w, h) factors from the boxes'
            frame to the one the differences are measured in; the data
            sample's ``scale_factor`` measures them at the network input.

    Returns:
        dict: ``expected`` and ``actual`` counts, ``unmatched`` (detections
        of either side without a partner), ``box`` and ``score``: the
        largest differences between partners (pixels, score units).
    """
    scale = expected.bboxes.new_tensor(scale_factor).repeat(2)
    expected_boxes = expected.bboxes * scale
    actual_boxes = actual.bboxes * scale
    unpaired = torch.ones(len(actual), dtype=torch.bool)
    box = score = 0.
    for i in torch.argsort(expected.scores, descending=True).tolist():
        candidates = (unpaired
                      & (actual.labels == expected.labels[i])).nonzero()[:, 0]
        if len(candidates) == 0:
            continue
        distances = (actual_boxes[candidates] -
                     expected_boxes[i]).abs().max(dim=1).values
        nearest = distances.argmin()
        j = candidates[nearest]
        unpaired[j] = False
        box = max(box, distances[nearest].item())
        score_diff = (actual.scores[j] - expected.scores[i]).abs().item()
        score = max(score, score_diff)
    paired = len(actual) - int(unpaired.sum())
    return dict(
        expected=len(expected),
        actual=len(actual),
        unmatched=len(expected) + len(actual) - 2 * paired,
        box=box,
        score=score)


def task_parity(task: str, torch_model, backend, inputs: dict) -> dict:
    """Run PyTorch and a backend on the same ``inputs`` and measure.

    Args:
        task (str): 'Classification', 'ObjectDetection' or 'Segmentation'.
        torch_model (nn.Module): The PyTorch model.
        backend: The backend model: ``test_step(data)`` predicts as the
            PyTorch model does; ``backend(images)`` returns its raw outputs
            by name for a preprocessed batch (see :class:`NcnnRunner`).
        inputs (dict): Data as the model's ``test_step`` takes it.

    Returns:
        dict: Classification: :func:`difference` of the class scores.
        Segmentation: :func:`difference` of the logits at input size, with
        ``agreement`` (:func:`label_agreement`). Detection:
        :func:`match_detections` at the network input.
    """
    if task == 'Segmentation':
        data = torch_model.data_preprocessor(copy.deepcopy(inputs), False)
        metas = [sample.metainfo for sample in data['data_samples']]
        with torch.no_grad():
            expected = torch_model.encode_decode(data['inputs'], metas)
            actual = backend(data['inputs'])['output']
        return dict(
            difference(expected, actual),
            agreement=label_agreement(expected, actual))
    with torch.no_grad():
        # Models write their predictions into the data samples: one copy
        # each.
        expected = torch_model.test_step(copy.deepcopy(inputs))[0]
        actual = backend.test_step(copy.deepcopy(inputs))[0]
    if task == 'Classification':
        return difference(expected.pred_score, actual.pred_score)
    scale_factor = expected.scale_factor
    # mmdeploy's ONNX graph keeps the boxes that clipping leaves empty,
    # which mmdet drops (min_bbox_size 0): drop them too (as the runtime
    # does). Where the graph's max_per_img detections included such boxes,
    # the rest are PyTorch's best ones.
    actual = actual.pred_instances
    boxes = actual.bboxes
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    expected = expected.pred_instances
    if not valid.all():
        actual = actual[valid]
        expected = expected[expected.scores.argsort(
            descending=True)[:len(actual)]]
    # Boxes are compared at the network input, before their rescaling to
    # the image multiplies the differences.
    return match_detections(expected, actual, scale_factor)


def init_reference_model(task: str,
                         model_cfg,
                         checkpoint: str,
                         device: str = 'cpu'):
    """The PyTorch model as mmdet's ``init_detector`` or mmseg's
    ``init_model`` builds it for inference; for classification,
    mmpretrain's ``ImageClassificationInferencer`` (what its
    ``inference_model`` uses for classifiers of its model index).

    Args:
        task (str): The bundle task ('classification', 'detection' or
            'segmentation').
    """
    if task == 'classification':
        from mmpretrain.apis import ImageClassificationInferencer

        # It builds its test pipeline in the default scope, whichever
        # library set that last.
        with DefaultScope.overwrite_default_scope(
                model_cfg.get('default_scope', 'mmpretrain')):
            return ImageClassificationInferencer(
                model_cfg, pretrained=checkpoint, device=device)
    if task == 'detection':
        from mmdet.apis import init_detector as init_model
    else:
        from mmseg.apis import init_model
    return init_model(model_cfg, checkpoint, device=device)


def reference_prediction(task: str, model, image) -> dict:
    """The prediction of a model of :func:`init_reference_model` on an image
    file or BGR array, by mmpretrain's inferencer, mmdet's
    ``inference_detector`` or mmseg's ``inference_model``, in the runtime's
    format (see ``edgeformer_runtime.Predictor``)."""
    if task == 'classification':
        with contextlib.redirect_stdout(io.StringIO()):  # a progress bar
            scores = model(image)[0]['pred_scores']
        top = torch.from_numpy(scores).topk(min(5, len(scores)))
        return dict(
            task=task,
            pred_label=int(top.indices[0]),
            pred_score=float(top.values[0]),
            top5=dict(labels=top.indices.tolist(), scores=top.values.tolist()),
            pred_scores=scores)
    # Build the test pipeline in the model's scope, whichever library set
    # the default scope last.
    scope = DefaultScope.overwrite_default_scope(
        model.cfg.get('default_scope'))
    if task == 'detection':
        from mmdet.apis import inference_detector
        with scope:
            instances = inference_detector(model, image).pred_instances
        return dict(
            task=task,
            detections=[
                dict(bbox=box, score=score, label=label)
                for box, score, label in zip(instances.bboxes.tolist(
                ), instances.scores.tolist(), instances.labels.tolist())
            ])
    from mmseg.apis import inference_model
    with scope:
        label_map = inference_model(model, image).pred_sem_seg.data[0]
    return dict(task=task, label_map=label_map.numpy())


def _instances(detections: list):
    from mmengine.structures import InstanceData
    return InstanceData(
        bboxes=torch.tensor([d['bbox'] for d in detections],
                            dtype=torch.float64).reshape(-1, 4),
        scores=torch.tensor([d['score'] for d in detections],
                            dtype=torch.float64),
        labels=torch.tensor([d['label'] for d in detections],
                            dtype=torch.long))


def _class_scores(prediction: dict) -> dict:
    """A classification prediction's scores by label: all of them, or the
    top-5 only (the command's JSON)."""
    if 'pred_scores' in prediction:
        return dict(enumerate(prediction['pred_scores']))
    return dict(
        zip(prediction['top5']['labels'], prediction['top5']['scores']))


# The agreement required between a bundle and PyTorch from an image file.
PREDICTION_TOLERANCES = dict(score=1e-4, box=0.01, agreement=0.999)


def compare_predictions(expected: dict,
                        actual: dict,
                        tolerances: dict = PREDICTION_TOLERANCES) -> dict:
    """Measure how far a bundle's prediction is from PyTorch's (both in the
    runtime's format) and whether it is within ``tolerances``.

    Returns:
        dict: ``passed`` and the figures: classification ``same_top5`` and
        ``score`` (largest top-5 score difference); detection
        :func:`match_detections` in image pixels; segmentation
        ``agreement`` (share of pixels with the same class).
    """
    task = expected['task']
    if task == 'classification':
        # Classes whose scores tie within the tolerance (e.g. the ~1e-20 of
        # a saturated softmax) may come in either order.
        scores = _class_scores(expected)
        swapped = [(e, a) for e, a in zip(expected['top5']['labels'],
                                          actual['top5']['labels']) if e != a]
        ties = all(
            a in scores and abs(scores[e] - scores[a]) <= tolerances['score']
            for e, a in swapped)
        score = max(
            abs(a - b) for a, b in zip(expected['top5']['scores'],
                                       actual['top5']['scores']))
        return dict(
            same_top5=not swapped,
            swapped_ties=len(swapped) if ties else None,
            score=score,
            passed=ties and score <= tolerances['score'])
    if task == 'detection':
        figures = match_detections(
            _instances(expected['detections']),
            _instances(actual['detections']))
        return dict(
            figures,
            passed=(figures['unmatched'] == 0
                    and figures['box'] <= tolerances['box']
                    and figures['score'] <= tolerances['score']))
    expected_map, actual_map = expected['label_map'], actual['label_map']
    if expected_map.shape != actual_map.shape:
        return dict(agreement=0., passed=False)
    agreement = float((expected_map == actual_map).mean())
    return dict(
        agreement=agreement, passed=agreement >= tolerances['agreement'])


def describe_comparison(task: str, figures: dict) -> str:
    """One line with the figures of :func:`compare_predictions`."""
    if task == 'classification':
        if figures['same_top5']:
            order = 'identical'
        elif figures['swapped_ties'] is not None:
            order = (f'identical but for {figures["swapped_ties"]} places '
                     'swapped between tied scores')
        else:
            order = 'DIFFERENT'
        return (f'top-5 {order}, largest score difference '
                f'{figures["score"]:.3g}')

    if task == 'detection':
        return (f'{figures["expected"]} detections, {figures["actual"]} from '
                f'the bundle, {figures["unmatched"]} unmatched; largest box '
                f'difference {figures["box"]:.3g} px, score difference '
                f'{figures["score"]:.3g}')
    return f'same class on {100 * figures["agreement"]:.3f}% of the pixels'


# The agreement required between an int8 bundle and the fp32 PyTorch model:
# the same top-1 class, unless PyTorch scores the bundle's within ``score``
# of its own (a near-tie that int8's error may swap); for detection, the
# share of PyTorch's ``top_detections`` most confident detections that the
# bundle finds too (same label, IoU >= ``iou``); for segmentation, the share
# of pixels.
INT8_PREDICTION_TOLERANCES = dict(
    score=0.05, agreement=0.9, iou=0.5, top_detections=10)


def paired_detections(expected: list,
                      actual: list,
                      top: int = INT8_PREDICTION_TOLERANCES['top_detections'],
                      iou: float = INT8_PREDICTION_TOLERANCES['iou']) -> dict:
    """How many of the ``top`` most confident ``expected`` detections are
    found in ``actual`` (the runtime's format): one each, of the same label,
    overlapping by IoU >= ``iou``, taken greedily by descending score.

    Returns:
        dict: ``paired`` and ``considered`` counts, ``share`` (1 when there
        is nothing to find).
    """
    from mmdet.structures.bbox import bbox_overlaps
    expected = sorted(expected, key=lambda d: -d['score'])[:top]
    if not expected:
        return dict(paired=0, considered=0, share=1.)
    if not actual:
        return dict(paired=0, considered=len(expected), share=0.)
    overlaps = bbox_overlaps(
        _instances(expected).bboxes,
        _instances(actual).bboxes)
    labels = torch.tensor([d['label'] for d in actual])
    unpaired = torch.ones(len(actual), dtype=torch.bool)
    paired = 0
    for i, detection in enumerate(expected):
        candidates = (
            unpaired & (labels == detection['label'])
            & (overlaps[i] >= iou))
        if candidates.any():
            best = torch.where(candidates, overlaps[i], -1.).argmax()
            unpaired[best] = False
            paired += 1
    return dict(
        paired=paired, considered=len(expected), share=paired / len(expected))


def compare_quantized_predictions(
        expected: dict,
        actual: dict,
        tolerances: dict = INT8_PREDICTION_TOLERANCES) -> dict:
    """Measure how far an int8 bundle's prediction is from the fp32
    PyTorch model's (both in the runtime's format) and whether it is within
    ``tolerances`` (see :data:`INT8_PREDICTION_TOLERANCES`).

    Returns:
        dict: ``passed`` and the figures: classification ``same_top1``,
        ``near_tie`` (PyTorch's score of the bundle's top-1 class is within
        the ``score`` tolerance of its top-1's), ``top5_overlap`` (classes
        both top-5 lists hold) and ``score`` (the top-1 class's score
        difference); detection
        :func:`paired_detections`; segmentation ``agreement``.
    """
    task = expected['task']
    if task == 'classification':
        same_top1 = expected['pred_label'] == actual['pred_label']
        scores = _class_scores(expected)
        near_tie = (not same_top1 and actual['pred_label'] in scores
                    and expected['pred_score'] - scores[actual['pred_label']]
                    <= tolerances['score'])
        return dict(
            same_top1=same_top1,
            near_tie=near_tie,
            top5_overlap=len(
                set(expected['top5']['labels'])
                & set(actual['top5']['labels'])),
            score=abs(expected['pred_score'] - actual['pred_score']),
            passed=same_top1 or near_tie)
    if task == 'detection':
        figures = paired_detections(expected['detections'],
                                    actual['detections'],
                                    tolerances['top_detections'],
                                    tolerances['iou'])
        return dict(
            figures,
            iou=tolerances['iou'],
            passed=figures['share'] >= tolerances['agreement'])
    return compare_predictions(expected, actual, tolerances)


def describe_quantized_comparison(task: str, figures: dict) -> str:
    """One line with the figures of :func:`compare_quantized_predictions`.
    """
    if task == 'classification':
        if figures['same_top1']:
            top1 = 'the same'
        elif figures['near_tie']:
            top1 = 'swapped with a near-tie'
        else:
            top1 = 'DIFFERENT'
        return (f'top-1 {top1}, {figures["top5_overlap"]} of the top-5 '
                'classes shared, '
                f'top-1 score difference {figures["score"]:.3g}')
    if task == 'detection':
        return (f'{figures["paired"]} of the {figures["considered"]} most '
                'confident detections found (same label, IoU >= '
                f'{figures["iou"]:g})')
    return describe_comparison(task, figures)
