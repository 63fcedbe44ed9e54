"""int8 against fp32, measured where no ImageNet, COCO or VOC is at hand:
the same converted model in fp32 and int8 on real photos, and bundles on a
model config's test set (see tools/analysis/int8_accuracy.py).

Without trained weights a classifier gets *calibrated random weights*
(:func:`calibrated_random_weights`): its outputs depend on the input as a
trained network's do, so that int8's error shows, but nothing says that
trained weights would quantize alike.
"""
import tempfile
from typing import Callable, Dict, Sequence

import numpy as np
import torch
from mmpretrain import get_model
from torch import nn

from edgeformer_runtime import Predictor, preprocess
from ..deployment.ncnn_int8 import NcnnParam, new_net, run_and_extract
from ..deployment.parity import paired_detections
from .benchmark import BENCHMARK_MODELS, classifier_steps, convert_classifier
from .photos import TEST_PHOTOS, copy_photos

BACKENDS = ('onnxruntime', 'ncnn')


def calibrated_random_weights(model: nn.Module) -> nn.Module:
    """Random weights that behave like trained ones for comparisons: BN
    statistics averaged over a few batches of random images (not a momentum
    update of the defaults, which leaves the outputs almost independent of
    the input) and a spread-out final classifier or head."""
    torch.manual_seed(0)
    norms = [
        m for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model.extract_feat(torch.rand(2, 3, 256, 256))
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        if hasattr(model, 'bbox_head'):
            for conv in model.bbox_head.cls_convs:
                conv[-1].weight.mul_(8)
        elif hasattr(model, 'decode_head'):
            model.decode_head.conv_seg.weight.mul_(8)
        else:
            model.head.fc.weight.mul_(4)
    return model.eval()


def output_agreement(expected: np.ndarray,
                     actual: np.ndarray) -> Dict[str, float]:
    """fp32 (``expected``) against int8 (``actual``) logits or class scores
    (N, C): the share of the same top-1 class, and the mean cosine
    similarity and relative error (||a - e|| / ||e||)."""
    expected, actual = expected.astype(np.float64), actual.astype(np.float64)
    cosine = (expected * actual).sum(1) / (
        np.linalg.norm(expected, axis=1) * np.linalg.norm(actual, axis=1))
    relative = np.linalg.norm(
        actual - expected, axis=1) / np.linalg.norm(
            expected, axis=1)
    return dict(
        top1=float((expected.argmax(1) == actual.argmax(1)).mean()),
        cosine=float(cosine.mean()),
        relative_error=float(relative.mean()))


def logits_runner(backend: str,
                  files: Sequence[str]) -> Callable[[np.ndarray], np.ndarray]:
    """A function from an input (1, 3, H, W) to the logits (1, C) of a
    converted classifier: the input of its softmax, one thread."""
    if backend.startswith('onnxruntime'):
        import onnx
        import onnxruntime
        model = onnx.load(files[0])
        name = [n for n in model.graph.node if n.op_type == 'Softmax'][-1]
        name = name.input[0]
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                               None))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            model.SerializeToString(),
            options,
            providers=['CPUExecutionProvider'])
        return lambda x: session.run([name], {'input': x})[0].reshape(1, -1)
    net = new_net(*files, num_threads=1)
    blob = next(layer.bottoms[0] for layer in NcnnParam.read(files[0]).layers
                if layer.kind == 'Softmax')

    def run(x):
        (_, mat), = run_and_extract(net, x[0], [blob])
        return np.array(mat).reshape(1, -1)

    return run


def classifier_photo_agreement(names: Sequence[str],
                               size: int = 256,
                               backends: Sequence[str] = BACKENDS,
                               method: str = 'percentile',
                               fp32_layers: Sequence[str] = (),
                               normalization: str = 'unit'):
    """fp32 against int8 for classifiers of :data:`BENCHMARK_MODELS` with
    calibrated random weights, on scikit-image's test photos; calibrated on
    its other photos; every model with the same preprocessing
    (:func:`.benchmark.classifier_steps` with ``normalization``).

    Returns:
        list[dict]: Per model and backend: ``model``, ``backend``,
        :func:`output_agreement`'s figures and ``int8_mac_share``.
    """
    shape = (size, size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photos = np.concatenate([
            preprocess(path, classifier_steps(shape,
                                              normalization)).input[None]
            for path in copy_photos(TEST_PHOTOS, tmp)
        ])
        for name in names:
            torch.manual_seed(0)  # the same random weights whatever ran before
            model = calibrated_random_weights(
                get_model(BENCHMARK_MODELS[name]))
            for backend in backends:
                scores = {}
                for precision in ('', '-int8'):
                    files, report = convert_classifier(name, model,
                                                       backend + precision,
                                                       shape, tmp, method,
                                                       fp32_layers,
                                                       normalization)
                    run = logits_runner(backend, files)
                    scores[precision] = np.concatenate(
                        [run(x[None]) for x in photos])
                rows.append(
                    dict(
                        model=name,
                        backend=backend,
                        **output_agreement(scores[''], scores['-int8']),
                        int8_mac_share=report['int8_macs'] / report['macs']))
    return rows


def bundle_photo_agreement(fp32_bundle: str, int8_bundle: str,
                           photos: Sequence[str]) -> Dict[str, float]:
    """An int8 bundle against the fp32 bundle of the same model on
    ``photos``, from the image files through the torch-free runtime.

    Returns:
        dict: classification: :func:`output_agreement`'s figures, on the
        class scores; detection: ``paired``, the share of the fp32
        bundle's 10 most confident detections per photo that the int8 one
        finds (same label, IoU >= 0.5); segmentation: ``agreement``, the
        share of pixels of the same class.
    """
    fp32, int8 = Predictor(fp32_bundle), Predictor(int8_bundle)
    predictions = [(fp32(path), int8(path)) for path in photos]
    task = predictions[0][0]['task']
    if task == 'classification':
        return output_agreement(
            np.stack([e['pred_scores'] for e, _ in predictions]),
            np.stack([a['pred_scores'] for _, a in predictions]))
    if task == 'detection':
        pairs = [
            paired_detections(e['detections'], a['detections'])
            for e, a in predictions
        ]
        return dict(
            paired=sum(p['paired'] for p in pairs) /
            max(1, sum(p['considered'] for p in pairs)))
    return dict(
        agreement=float(
            np.mean([(e['label_map'] == a['label_map']).mean()
                     for e, a in predictions])))
