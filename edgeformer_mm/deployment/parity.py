"""How far a backend's outputs are from PyTorch's, per task."""
import copy
from typing import Dict

import torch
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


def match_detections(expected, actual, scale_factor=(1., 1.)
                     ) -> Dict[str, float]:
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
