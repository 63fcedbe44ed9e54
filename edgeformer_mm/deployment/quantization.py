"""Post-training int8 quantization: calibration sets, ONNX Runtime's static
QDQ quantization, and the graph facts both backends need (which layers are
the first and the last, how many MACs run in int8).

ncnn's int8 format is written by :mod:`.ncnn_int8`; the activation ranges
of its calibration come from :mod:`.calibration`.
"""
import copy
import os
import os.path as osp
import tempfile
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config

from edgeformer_runtime import preprocess
from edgeformer_runtime.preprocess import ImageError
from .calibration import CALIBRATION_METHODS, ActivationObserver

IMAGE_EXTENSIONS = ('.bmp', '.jpeg', '.jpg', '.png', '.tif', '.tiff', '.webp')
# The layers that can be kept in fp32 by name (see end_layers).
FP32_LAYER_CHOICES = ('first', 'last')
# Operators whose MACs count (what count_macs counts in PyTorch).
ONNX_COMPUTE_OPS = ('Conv', 'MatMul', 'Gemm')
# Per-channel DequantizeLinear (its axis attribute) needs opset 13; mmdeploy
# exports opset 11.
QDQ_OPSET = 13


class CalibrationError(ValueError):
    """A calibration set that cannot be used (empty, unreadable images, the
    wrong size)."""


def calibration_images(directory: str, num: Optional[int] = None) -> List[str]:
    """The image files in ``directory`` and its subdirectories, sorted; the
    first ``num`` of them if given."""
    if not osp.isdir(directory):
        raise CalibrationError(
            f'the calibration image folder {directory} does not exist')
    images = sorted(
        osp.join(root, name) for root, _, names in os.walk(directory)
        for name in names if name.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise CalibrationError(
            f'no images ({", ".join(IMAGE_EXTENSIONS)}) in the calibration '
            f'folder {directory}')
    return images[:num] if num else images


def image_inputs(images: Sequence[str], steps: List[dict],
                 input_size: Tuple[int, int]) -> List[np.ndarray]:
    """The network inputs (1, 3, H, W) of ``images`` by a bundle's
    preprocessing ``steps`` (the model config's test pipeline and data
    preprocessor, bit-exact; see ``edgeformer_runtime.preprocess``)."""
    inputs = []
    for image in images:
        try:
            x = preprocess(image, steps).input
        except (ImageError, ValueError) as error:
            raise CalibrationError(
                f'calibration image {image}: {error}') from error
        _check_size(x, input_size, image)
        inputs.append(x[None])
    return inputs


def dataset_inputs(model_cfg: Config, split: str, num: int,
                   input_size: Tuple[int, int]) -> List[np.ndarray]:
    """The network inputs (1, 3, H, W) of ``num`` images of a data set of
    ``model_cfg`` (``split``: 'train', 'val' or 'test', by its
    ``{split}_dataloader``), evenly spaced over the set, through the
    config's test pipeline (no augmentation) and data preprocessor."""
    import torch
    from mmengine.registry import DATASETS, DefaultScope

    from ..utils import build_model

    key = f'{split}_dataloader'
    if not model_cfg.get(key):
        raise CalibrationError(f'the model config has no {key}')
    dataset_cfg = copy.deepcopy(model_cfg[key].dataset)
    while 'pipeline' not in dataset_cfg and 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg.dataset  # RepeatDataset and the like
    dataset_cfg.pipeline = model_cfg.test_dataloader.dataset.pipeline
    with DefaultScope.overwrite_default_scope(model_cfg.get('default_scope')):
        dataset = DATASETS.build(dataset_cfg)
    model_cfg = model_cfg.copy()
    if model_cfg.get('data_preprocessor'):  # as mmpretrain's init_model
        model_cfg.model.setdefault('data_preprocessor',
                                   model_cfg.data_preprocessor)
    preprocessor = build_model(model_cfg).data_preprocessor
    if len(dataset) == 0:
        raise CalibrationError(f'the {split} set of the model config is '
                               'empty')
    indices = np.unique(np.linspace(0, len(dataset) - 1, num).round())
    inputs = []
    with torch.no_grad():
        for index in indices.astype(int).tolist():
            sample = dataset[index]
            x = preprocessor(
                dict(
                    inputs=[sample['inputs']],
                    data_samples=[sample['data_samples']]),
                False)['inputs'].numpy()
            _check_size(x[0], input_size, f'{split} image {index}')
            inputs.append(x.astype(np.float32))
    return inputs


def _check_size(x: np.ndarray, input_size: Tuple[int, int], name: str):
    if tuple(x.shape[-2:]) != tuple(input_size):
        raise CalibrationError(
            f'{name} is preprocessed to {x.shape[-2]}x{x.shape[-1]}, but the '
            f'model is static {input_size[0]}x{input_size[1]}')


def end_layers(layers: Sequence[Tuple[str, bool, Sequence[str],
                                      Sequence[str]]],
               graph_input: str) -> Dict[str, List[str]]:
    """The first and last quantizable layers of a graph.

    Args:
        layers: (name, quantizable, inputs, outputs) of each layer, in
            topological order.
        graph_input (str): The name of the image input.

    Returns:
        dict: ``first``: the quantizable layers that read the image before
        any other quantizable layer touched it (the stem); ``last``: the
        quantizable layers with no quantizable layer after them (the
        classifier, the detection and segmentation heads' last
        convolutions); ``tail``: the other layers with no quantizable layer
        after them (softmax, box decoding, NMS, resizing to the input).
    """
    # Tensors reached from the image through non-quantizable layers only.
    raw = {graph_input}
    first = []
    for name, quantizable, inputs, outputs in layers:
        if raw & set(inputs):
            if quantizable:
                first.append(name)
            else:
                raw.update(outputs)
    # Walk backwards: a layer is last if no quantizable layer depends on it.
    consumers_quantized = set()  # tensors a quantizable layer depends on
    last, tail = [], []
    for name, quantizable, inputs, outputs in reversed(layers):
        feeds_quantized = bool(consumers_quantized & set(outputs))
        if not feeds_quantized:
            (last if quantizable else tail).append(name)
        if quantizable or feeds_quantized:
            consumers_quantized.update(inputs)
    return dict(first=first, last=last[::-1], tail=tail[::-1])


def _onnx_layers(graph) -> list:
    return [(node.name, node.op_type
             in ONNX_COMPUTE_OPS, list(node.input), list(node.output))
            for node in graph.node]


def quantize_onnx(model_file: str,
                  out_file: str,
                  inputs: Sequence[np.ndarray],
                  method: str = 'percentile',
                  fp32_layers: Iterable[str] = (),
                  input_name: str = 'input') -> dict:
    """Quantize an ONNX model to int8 with ONNX Runtime's static QDQ
    quantization.

    Weights symmetric int8 per output channel; activations uint8 per tensor
    (ONNX Runtime's fast path on x86 and ARM), their ranges calibrated on
    ``inputs`` by ``method`` (:func:`activation_ranges`; ONNX Runtime's own
    entropy calibration cannot be given more histogram bins than int8
    levels through ``quantize_static``, which makes it min-max). Every
    operator ONNX Runtime can run in int8 is quantized, the GCC's products
    with constant circulant matrices included: those matrices are
    quantized per tensor (QLinearMatMul takes no per-channel scales on a
    batched operand), uint8 when they are the left operand (ONNX Runtime
    has no int8 x uint8 kernel). What follows the last convolutions and
    products (softmax, box decoding, NMS, the
    resize to the input) stays fp32: 8 bits over a whole tensor would round
    scores to 1/255 and box coordinates to a pixel or more.

    Args:
        model_file (str): The fp32 model.
        out_file (str): The int8 model; appears only once complete.
        inputs (list[np.ndarray]): Calibration inputs, (1, 3, H, W).
        method (str): One of :data:`CALIBRATION_METHODS`.
        fp32_layers (Iterable[str]): Keep these of
            :data:`FP32_LAYER_CHOICES` in fp32 (see :func:`end_layers`).
        input_name (str): The graph's input.

    Returns:
        dict: ``fp32_layers``: the node names kept in fp32; and
        :func:`onnx_int8_share`'s figures.
    """
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader,
                                          CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    _check_calibration(method, inputs)

    class Reader(CalibrationDataReader):
        """One input: ONNX Runtime's min-max pass only has to run, the
        ranges are ours (the overrides)."""

        def __init__(self):
            self.batches = iter(inputs[:1])

        def get_next(self):
            x = next(self.batches, None)
            return None if x is None else {input_name: x}

    out_dir = osp.dirname(osp.abspath(out_file))
    with tempfile.TemporaryDirectory(dir=out_dir, prefix='.int8-') as tmp:
        prepared = osp.join(tmp, 'prepared.onnx')
        onnx.save(_with_opset(onnx.load(model_file), QDQ_OPSET), prepared)
        # Shape inference and ONNX Runtime's basic fusions, as its
        # quantization guide advises (MatMul + Add -> Gemm only fuses 2-D
        # products, never the GCC's 4-D ones).
        quant_pre_process(prepared, prepared)
        graph = onnx.load(prepared).graph
        ends = end_layers(_onnx_layers(graph), input_name)
        excluded = [
            name for choice in fp32_layers for name in ends[_choice(choice)]
        ]
        constants = {init.name for init in graph.initializer}
        overrides = {  # ONNX Runtime wants numpy scalars of the type
            name: [dict(rmin=np.float32(low), rmax=np.float32(high))]
            for name, (low, high) in activation_ranges(
                prepared, inputs, method, input_name).items()
        }
        for node in graph.node:
            if node.op_type != 'MatMul':
                continue
            left, right = node.input[:2]
            if right in constants:
                overrides[right] = [dict(symmetric=True)]
            if left in constants:
                overrides[left] = [dict(quant_type=QuantType.QUInt8)]
        quantized = osp.join(tmp, 'int8.onnx')
        quantize_static(
            prepared,
            quantized,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=excluded + ends['tail'],
            extra_options=dict(TensorQuantOverrides=overrides))
        os.replace(quantized, out_file)
    return dict(fp32_layers=excluded, **onnx_int8_share(out_file))


def activation_ranges(model_file: str, inputs: Sequence[np.ndarray],
                      method: str,
                      input_name: str) -> Dict[str, Tuple[float, float]]:
    """The calibrated (min, max) of every float tensor that a node of an
    ONNX model reads or writes.

    The model runs on each input with every such tensor as an output; an
    :class:`.calibration.ActivationObserver` per tensor gives the threshold
    of ``method``, which clips the observed minimum and maximum.
    """
    import onnx
    import onnxruntime
    model = onnx.load(model_file)
    graph = model.graph
    types = {
        value.name: value.type.tensor_type.elem_type
        for value in [*graph.value_info, *graph.input, *graph.output]
    }
    constants = {init.name for init in graph.initializer}
    tensors = list(
        dict.fromkeys(name for node in graph.node
                      for name in [*node.input, *node.output]
                      if name not in constants
                      and types.get(name) == onnx.TensorProto.FLOAT))
    # The input is observed as it is fed; the rest as extra outputs.
    computed = [name for name in tensors if name != input_name]
    outputs = {output.name for output in graph.output}
    graph.output.extend(
        value for value in graph.value_info
        if value.name in computed and value.name not in outputs)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = (
        onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=['CPUExecutionProvider'])
    observers = {name: ActivationObserver(method) for name in tensors}
    lows = dict.fromkeys(tensors, 0.)
    highs = dict.fromkeys(tensors, 0.)
    for x in inputs:
        results = session.run(computed, {input_name: x})
        for name, values in zip([input_name, *computed], [x, *results]):
            observers[name].observe(values)
            if values.size:
                lows[name] = min(lows[name], float(values.min()))
                highs[name] = max(highs[name], float(values.max()))
    ranges = {}
    for name, observer in observers.items():
        threshold = observer.threshold()
        ranges[name] = (max(lows[name],
                            -threshold), min(highs[name], threshold))
    return ranges


def _check_calibration(method: str, inputs: Sequence[np.ndarray]):
    """Refuse an unknown calibration method and an empty calibration set
    before any conversion work."""
    if method not in CALIBRATION_METHODS:
        raise ValueError(f'unknown calibration method {method!r}; one of '
                         f'{", ".join(CALIBRATION_METHODS)}')
    if len(inputs) == 0:
        raise CalibrationError('the calibration set is empty')


def _with_opset(model, opset: int):
    """``model`` converted to ``opset`` if it is older."""
    import onnx
    current = next(
        entry.version for entry in model.opset_import
        if entry.domain in ('', 'ai.onnx'))
    if current >= opset:
        return model
    return onnx.version_converter.convert_version(model, opset)


def _choice(choice: str) -> str:
    if choice not in FP32_LAYER_CHOICES:
        raise ValueError(f'unknown layer choice {choice!r}; one of '
                         f'{", ".join(FP32_LAYER_CHOICES)}')
    return choice


def onnx_int8_share(model_file: str) -> dict:
    """How much of a QDQ model's compute runs in int8.

    A Conv, MatMul or Gemm counts as int8 when all its operands come from
    DequantizeLinear (ONNX Runtime then fuses it into an int8 kernel).

    Returns:
        dict: ``int8_macs`` and ``macs`` (multiply-accumulates per image),
        ``int8_layers`` and ``layers`` (counts).
    """
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(model_file))
    graph = model.graph
    shapes = {
        value.name:
        [dim.dim_value for dim in value.type.tensor_type.shape.dim]
        for value in [*graph.value_info, *graph.input, *graph.output]
    }
    shapes.update({init.name: list(init.dims) for init in graph.initializer})
    dequantized = {
        node.output[0]
        for node in graph.node if node.op_type == 'DequantizeLinear'
    }
    figures = dict(int8_macs=0, macs=0, int8_layers=0, layers=0)
    for node in graph.node:
        if node.op_type not in ONNX_COMPUTE_OPS:
            continue
        macs = _onnx_macs(node, shapes)
        int8 = all(name in dequantized for name in node.input[:2])
        figures['macs'] += macs
        figures['layers'] += 1
        if int8:
            figures['int8_macs'] += macs
            figures['int8_layers'] += 1
    return figures


def _onnx_macs(node, shapes: dict) -> int:
    output = shapes[node.output[0]]
    if node.op_type == 'Conv':
        weight = shapes[node.input[1]]  # (out, in / groups, kh, kw)
        return int(np.prod(output) * np.prod(weight[1:]))
    # MatMul, Gemm: every output element sums over the shared dimension.
    left = shapes[node.input[0]]
    transposed = any(attr.name == 'transA' and attr.i
                     for attr in node.attribute)
    return int(np.prod(output) * (left[-2] if transposed else left[-1]))


def quantize_ncnn_model(param_file: str,
                        bin_file: str,
                        out_prefix: str,
                        inputs: Sequence[np.ndarray],
                        method: str = 'percentile',
                        fp32_layers: Iterable[str] = (),
                        input_name: str = 'input') -> Tuple[List[str], dict]:
    """Quantize an fp32 ncnn model to ncnn's int8 format (see
    :func:`.ncnn_int8.quantize_ncnn`), the ``fp32_layers`` of
    :data:`FP32_LAYER_CHOICES` excepted.

    Returns:
        tuple[list[str], dict]: The .param and .bin paths; and
        ``fp32_layers`` (the layer names kept in fp32), ``int8_macs``,
        ``macs``, ``int8_layers`` and ``layers`` (as
        :func:`onnx_int8_share`: layers that multiply tensors).
    """
    from . import ncnn_int8

    _check_calibration(method, inputs)
    param = ncnn_int8.NcnnParam.read(param_file)
    ends = end_layers(
        [(layer.name, ncnn_int8.can_quantize(layer), layer.bottoms, layer.tops)
         for layer in param.layers], input_name)
    excluded = [
        name for choice in fp32_layers for name in ends[_choice(choice)]
    ]
    files = ncnn_int8.quantize_ncnn(
        param_file, bin_file, out_prefix, inputs, method, exclude=excluded)
    macs = ncnn_int8.layer_macs(*files, inputs[0].shape)
    int8 = set(ncnn_int8.int8_layers(files[0]))
    return files, dict(
        fp32_layers=excluded,
        int8_macs=sum(v for name, v in macs.items() if name in int8),
        macs=sum(macs.values()),
        int8_layers=len(int8 & set(macs)),
        layers=len(macs))
