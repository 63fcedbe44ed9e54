"""int8 ncnn models from fp32 ones: post-training quantization written in
the format of ncnn's own ``ncnn2table`` and ``ncnn2int8`` tools (which are
not on PyPI), run by the stock ncnn runtime.

What is quantized, as ncnn runs it:

- ``Convolution`` (``8=2``): int8 weights with one scale per output
  channel, the input quantized at run time with one calibrated scale (see
  :mod:`edgeformer_mm.deployment.calibration`), int32 accumulation, the
  output dequantized to fp32 (bias and fused activation in fp32).
  ``ncnn2table`` gives 3x3 stride-1 convolutions 6-bit weights because
  ncnn's int8 Winograd F(4,3) holds transformed weights and inputs in int16
  and sums their products in int32, which can overflow; here they keep
  8-bit weights and lose Winograd instead (bit 6 of the layer's option mask,
  ``31=64``): the direct int8 kernels accumulate exactly.
- ``ConvolutionDepthWise`` (``8=1``): one weight scale per group.
- ``InnerProduct`` (``8=2``) on a vector (the classifier, squeeze-excite).
  On a matrix (ncnn's "gemm" mode: pnnx's token-wise linear layers, each
  item of a batch axis in turn) ncnn has int8 kernels on x86 and ARM, but
  they are plain SIMD loops, not the packed, tiled GEMM of its fp32 path:
  about 4x slower than fp32 on x86 (MobileViT-S), so these layers stay
  fp32 unless asked (``int8_token_linear``).
- ``Gemm`` with constant weights B (``18=2``), as ``ncnn2int8`` does: B in
  int8 with one scale for the whole matrix; the input A is quantized at
  run time, row by row, from its own range (nothing to calibrate).
- A Convolution or ConvolutionDepthWise whose output only feeds another
  quantized one writes int8 directly (``8=102`` or ``8=101``, with the
  reader's input scale: ``ncnn2int8``'s requantize fusion).

Everything else (MatMul, BinaryOp, SDPA, LayerNorm...) stays as it was.

The .bin file is walked layer by layer, in the order of the .param file,
reading what each layer's ``load_model`` reads (see :func:`weight_loads`):
an unknown layer type that owns weights is an error, not a corrupt file.
"""
import os
import os.path as osp
import struct
import tempfile
from dataclasses import dataclass, field
from typing import (Any, Dict, Iterable, Iterator, List, Optional, Sequence,
                    Set, Tuple)

import numpy as np

from .calibration import ActivationObserver
from .ncnn import INPUT_NAME, ConverterNotFoundError

# ModelBin's flags before a weight read with load type 0 ("tagged").
FP32_TAG = 0
FP32_RAW_TAG = 0x0002C056  # fp32 too
FP16_TAG = 0x01306B47
INT8_TAG = 0x000D4B38
# Any other non-zero flag: a 256-entry fp32 table, then one byte per weight.
TABLE_ENTRIES = 256

# ModelBin load types: 0 starts with a flag (fp32, fp16, int8...), 1 is
# raw fp32.
TAGGED, RAW = 0, 1

QUANTIZABLE_TYPES = ('Convolution', 'ConvolutionDepthWise', 'InnerProduct',
                     'Gemm')
# The parameter that holds each type's int8_scale_term (Gemm's
# quantize_term) and the value ncnn2int8 writes.
INT8_TERM_KEY = {
    'Convolution': 8,
    'ConvolutionDepthWise': 8,
    'InnerProduct': 8,
    'Gemm': 18
}
INT8_TERM = {
    'Convolution': 2,
    'ConvolutionDepthWise': 1,
    'InnerProduct': 2,
    'Gemm': 2
}
REQUANTIZE = 100  # added to int8_scale_term: int8 output, one more scale
# Layers whose ncnn load_model reads weights (ncnn's src/layer): those not
# handled by weight_loads stop a rewrite.
WEIGHT_OWNING_TYPES = frozenset([
    'BatchNorm', 'Bias', 'Convolution', 'Convolution1D', 'Convolution3D',
    'ConvolutionDepthWise', 'ConvolutionDepthWise1D', 'ConvolutionDepthWise3D',
    'Deconvolution', 'Deconvolution1D', 'Deconvolution3D',
    'DeconvolutionDepthWise', 'DeconvolutionDepthWise1D',
    'DeconvolutionDepthWise3D', 'DeformableConv2D', 'Dequantize', 'Embed',
    'Gemm', 'GroupNorm', 'GRU', 'InnerProduct', 'InstanceNorm', 'LayerNorm',
    'LSTM', 'MemoryData', 'MultiHeadAttention', 'Normalize', 'Padding',
    'PReLU', 'Quantize', 'Requantize', 'RMSNorm', 'RNN', 'Scale'
])
MAX_WEIGHT = 127
# Bit 6 of ncnn's per-layer option mask (param 31): no Winograd
# convolution for the layer.
NO_WINOGRAD = 1 << 6


def align4(size: int) -> int:
    """``size`` rounded up to a multiple of 4 (ModelBin's alignment)."""
    return (size + 3) // 4 * 4


@dataclass
class NcnnLayer:
    """One line of a .param file; ``params`` are its ``key=value`` tokens
    as written (arrays as ``-233xx=n,...``)."""
    kind: str
    name: str
    bottoms: List[str]
    tops: List[str]
    params: List[str] = field(default_factory=list)

    @classmethod
    def parse(cls, line: str) -> 'NcnnLayer':
        kind, name, n_in, n_out, *rest = line.split()
        n_in, n_out = int(n_in), int(n_out)
        return cls(kind, name, rest[:n_in], rest[n_in:n_in + n_out],
                   rest[n_in + n_out:])

    def get(self, key: int, default: int = 0) -> int:
        """The integer parameter ``key`` (ncnn's default if absent)."""
        prefix = f'{key}='
        for token in self.params:
            if token.startswith(prefix):
                return int(float(token[len(prefix):]))
        return default

    def set(self, key: int, value: int):
        """Set the integer parameter ``key``, replacing its token."""
        prefix = f'{key}='
        self.params = [p for p in self.params if not p.startswith(prefix)]
        self.params.append(f'{key}={value}')

    def line(self) -> str:
        return ' '.join([
            self.kind, self.name,
            str(len(self.bottoms)),
            str(len(self.tops)), *self.bottoms, *self.tops, *self.params
        ])


@dataclass
class NcnnParam:
    """A .param file: its magic, blob count and layers."""
    magic: str
    num_blobs: int
    layers: List[NcnnLayer]

    @classmethod
    def read(cls, path: str) -> 'NcnnParam':
        with open(path) as f:
            magic, counts, *lines = [
                line for line in f.read().splitlines() if line.strip()
            ]
        num_layers, num_blobs = map(int, counts.split())
        layers = [NcnnLayer.parse(line) for line in lines]
        if len(layers) != num_layers:
            raise ValueError(f'{path}: {len(layers)} layers, the header '
                             f'says {num_layers}')
        return cls(magic, num_blobs, layers)

    def text(self) -> str:
        return '\n'.join([
            self.magic, f'{len(self.layers)} {self.num_blobs}',
            *(layer.line() for layer in self.layers)
        ]) + '\n'

    def consumers(self) -> Dict[str, List[int]]:
        """The indices of the layers that read each blob."""
        readers = {}
        for i, layer in enumerate(self.layers):
            for blob in layer.bottoms:
                readers.setdefault(blob, []).append(i)
        return readers


@dataclass
class WeightBlob:
    """One ModelBin read: ``load_type`` 0 (a flag, then fp32, fp16, int8
    or table-indexed data, padded to 4 bytes) or 1 (raw fp32); ``data``
    the bytes after the flag."""
    load_type: int
    count: int
    data: bytes
    tag: int = FP32_TAG

    def to_bytes(self) -> bytes:
        if self.load_type == RAW:
            return self.data
        return struct.pack('<I', self.tag) + self.data

    def to_float32(self) -> np.ndarray:
        """The values as fp32 (int8 data cannot be quantized again)."""
        if self.load_type == RAW or self.tag in (FP32_TAG, FP32_RAW_TAG):
            return np.frombuffer(self.data, '<f4', self.count)
        if self.tag == FP16_TAG:
            return np.frombuffer(self.data, '<f2',
                                 self.count).astype(np.float32)
        if self.tag == INT8_TAG:
            raise ValueError('the weights are int8 already')
        table = np.frombuffer(self.data, '<f4', TABLE_ENTRIES)
        index = np.frombuffer(self.data, np.uint8, self.count,
                              TABLE_ENTRIES * 4)
        return table[index]

    @classmethod
    def raw(cls, values: np.ndarray) -> 'WeightBlob':
        values = np.ascontiguousarray(values, '<f4').ravel()
        return cls(RAW, values.size, values.tobytes())

    @classmethod
    def int8(cls, values: np.ndarray) -> 'WeightBlob':
        values = np.ascontiguousarray(values, np.int8).ravel()
        padding = bytes(align4(values.size) - values.size)
        return cls(TAGGED, values.size, values.tobytes() + padding, INT8_TAG)


def weight_loads(layer: NcnnLayer) -> List[Tuple[int, int]]:
    """The ModelBin reads of ``layer``'s ``load_model``, in order: (element
    count, load type) pairs.

    Raises:
        NotImplementedError: The layer owns weights that are not handled.
    """
    kind, get = layer.kind, layer.get
    if kind in ('Convolution', 'ConvolutionDepthWise', 'Convolution1D',
                'ConvolutionDepthWise1D', 'Deconvolution',
                'DeconvolutionDepthWise'):
        dynamic_key = 28 if kind.startswith('Deconvolution') else 19
        if get(dynamic_key):
            return []
        num_output = get(0)
        loads = [(get(6), TAGGED)] + [(num_output, RAW)] * bool(get(5))
        int8_term = get(8) if kind in INT8_TERM_KEY else 0
        if int8_term:
            loads += [(int8_weight_scale_count(layer, int8_term), RAW),
                      (1, RAW)]  # the weight scales, the input scale
            loads += [(1, RAW)] * (int8_term > REQUANTIZE)  # output scale
        return loads
    if kind == 'InnerProduct':
        loads = [(get(2), TAGGED)] + [(get(0), RAW)] * bool(get(1))
        if get(8):
            loads += [(get(0), RAW), (1, RAW)]
        return loads
    if kind == 'Gemm':
        return gemm_loads(layer)
    if kind == 'MemoryData':
        return memory_data_loads(layer)
    if kind in ('LayerNorm', 'InstanceNorm'):
        return [(get(0), RAW)] * 2 if get(2, 1) else []
    if kind == 'RMSNorm':
        return [(get(0), RAW)] if get(2, 1) else []
    if kind == 'GroupNorm':
        return [(get(1), RAW)] * 2 if get(3, 1) else []
    if kind == 'BatchNorm':
        return [(get(0), RAW)] * 4
    if kind == 'Scale':
        if get(0) == -233:  # the scale is a second input
            return []
        return [(get(0), RAW)] * (1 + bool(get(1)))
    if kind in ('Bias', 'PReLU'):
        return [(get(0), RAW)]
    if kind == 'Normalize':
        return [(get(3), RAW)]
    if kind == 'Padding':
        return [(get(6), RAW)] if get(6) else []
    if kind == 'Embed':
        return ([(get(3), TAGGED)] + [(get(0), RAW)] * bool(get(2)) +
                [(1, RAW)] * bool(get(18)))
    if kind in WEIGHT_OWNING_TYPES:
        raise NotImplementedError(
            f'cannot read the weights of {kind} layers ({layer.name}) from '
            'an ncnn .bin file: the type is not handled')
    return []


def int8_weight_scale_count(layer: NcnnLayer, int8_term: int) -> int:
    """How many weight scales an int8 convolution reads: one per output
    channel (Convolution), per group (ConvolutionDepthWise 1, 101) or one
    (ConvolutionDepthWise 2, 102)."""
    if layer.kind == 'Convolution':
        return layer.get(0)
    if int8_term % REQUANTIZE == 1:
        return layer.get(7, 1)
    if int8_term % REQUANTIZE == 2:
        return 1
    raise NotImplementedError(f'{layer.name}: ConvolutionDepthWise '
                              f'int8_scale_term {int8_term}')


def memory_data_loads(layer: NcnnLayer) -> List[Tuple[int, int]]:
    """MemoryData reads w * h * d * c values of its load type (21),
    fewer dimensions when the later ones are 0, nothing without any."""
    w, h, d, c = (layer.get(key) for key in (0, 1, 11, 2))
    if d:
        count = w * h * d * c
    elif c:
        count = w * h * c
    elif h:
        count = w * h
    else:
        count = w
    return [(count, layer.get(21, RAW))] if count else []


def gemm_loads(layer: NcnnLayer) -> List[Tuple[int, int]]:
    """The reads of Gemm's ``load_model``: constant A, B and C, then the
    int8 scales of A (one per row) and B."""
    get = layer.get
    quantize_term = get(18)
    if quantize_term not in (0, 2):
        raise NotImplementedError(
            f'{layer.name}: Gemm quantize_term {quantize_term} (block '
            'quantized weights) is not handled')
    m, n, k = get(7), get(8), get(9)
    loads = []
    if get(4):
        loads.append((m * k, TAGGED))
    if get(5):
        loads.append((n * k, TAGGED))
    broadcast_c = get(10)
    if get(6) and broadcast_c != -1:
        sizes = {0: 1, 1: m, 2: m, 3: m * n, 4: n}
        if broadcast_c not in sizes:
            raise NotImplementedError(
                f'{layer.name}: Gemm C broadcast type {broadcast_c}')
        loads.append((sizes[broadcast_c], TAGGED))
    if quantize_term:
        loads += [(m, RAW)] * bool(get(4)) + [(1, RAW)] * bool(get(5))
    return loads


def read_weights(param: NcnnParam, data: bytes) -> List[List[WeightBlob]]:
    """Split the contents of a .bin file into the reads of each layer of
    ``param`` (an empty list for a layer without weights).

    Raises:
        ValueError: The file is shorter or longer than the layers read.
    """
    weights, offset = [], 0
    for layer in param.layers:
        blobs = []
        for count, load_type in weight_loads(layer):
            start = offset
            tag = FP32_TAG
            if load_type == TAGGED and offset + 4 <= len(data):
                tag, = struct.unpack_from('<I', data, offset)
                offset += 4
                size = tagged_size(tag, count)
            elif load_type in (TAGGED, RAW):  # RAW, or no room for a flag
                size = 4 * count
            else:
                raise NotImplementedError(
                    f'{layer.name}: ModelBin load type {load_type}')
            if offset + size > len(data):
                raise ValueError(
                    f'the .bin file ends in the weights of {layer.name} '
                    f'({layer.kind}, at byte {start} of {len(data)})')
            blobs.append(
                WeightBlob(load_type, count, data[offset:offset + size], tag))
            offset += size
        weights.append(blobs)
    if offset != len(data):
        raise ValueError(f'the .bin file has {len(data) - offset} bytes '
                         'after the weights of the layers')
    return weights


def tagged_size(tag: int, count: int) -> int:
    """Bytes after the flag of a tagged read of ``count`` values."""
    if tag in (FP32_TAG, FP32_RAW_TAG):
        return 4 * count
    if tag == FP16_TAG:
        return align4(2 * count)
    if tag == INT8_TAG:
        return align4(count)
    return 4 * TABLE_ENTRIES + align4(count)


def quantize_symmetric(values: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """int8 of ``values * scales`` as ncnn's ``float2int8``: rounded half
    away from zero, clamped to [-127, 127] (fp32 arithmetic)."""
    scaled = np.asarray(values, np.float32) * np.asarray(scales, np.float32)
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))
    return np.clip(rounded, -MAX_WEIGHT, MAX_WEIGHT).astype(np.int8)


def weight_scales(rows: np.ndarray) -> np.ndarray:
    """``127 / max|w|`` of each row (1 for a row of zeros, which any scale
    quantizes to zeros)."""
    absmax = np.abs(rows).max(axis=1).astype(np.float32)
    safe = np.where(absmax > 0, absmax, 1)
    return np.where(absmax > 0,
                    np.float32(MAX_WEIGHT) / safe, 1).astype(np.float32)


def quantizable_layers(param_file: str) -> List[str]:
    """Names of the layers :func:`quantize_ncnn` can quantize, in the order
    of the .param file: the first and last are usually the stem and the
    classifier, often kept in fp32 through ``exclude``. (InnerProduct
    layers on matrices are among them: only a run tells them apart.)"""
    param = NcnnParam.read(param_file)
    return [layer.name for layer in param.layers if can_quantize(layer)]


def can_quantize(layer: NcnnLayer) -> bool:
    """Whether ``layer`` is an fp32 layer of a type ncnn runs in int8."""
    if layer.kind not in QUANTIZABLE_TYPES or layer.get(
            INT8_TERM_KEY[layer.kind]):
        return False
    if layer.kind == 'Gemm':
        # constant weights B only (ncnn2int8 also handles a constant A)
        return not layer.get(4) and bool(layer.get(5))
    return not layer.get(19)  # no weights given as a second input


def int8_layers(param_file: str) -> List[str]:
    """Names of the layers of a .param file that ncnn runs in int8 (those
    with an int8_scale_term or Gemm quantize_term)."""
    param = NcnnParam.read(param_file)
    return [
        layer.name for layer in param.layers
        if layer.kind in INT8_TERM_KEY and layer.get(INT8_TERM_KEY[layer.kind])
    ]


def new_net(param_file: str, bin_file: str, num_threads: int = 1):
    """An ncnn Net of the files, fp32 storage and arithmetic (no fp16).

    One thread by default: OpenMP threads waiting for a busy core can make
    a run many times slower.
    """
    try:
        import ncnn
    except ImportError as error:
        raise ConverterNotFoundError(
            'the ncnn runtime is not installed (`pip install ncnn`, see '
            'requirements/deploy.txt)') from error
    net = ncnn.Net()
    for option in [
            'use_fp16_storage', 'use_fp16_packed', 'use_fp16_arithmetic'
    ]:
        setattr(net.opt, option, False)
    net.opt.num_threads = num_threads
    for path, load in [(param_file, net.load_param),
                       (bin_file, net.load_model)]:
        if load(path) != 0:
            raise RuntimeError(f'ncnn cannot load {path}')
    return net


def check_input(array: np.ndarray) -> np.ndarray:
    """The image (C, H, W) of a batch of one (1, C, H, W), in fp32."""
    array = np.asarray(array)
    if array.ndim != 4 or array.shape[0] != 1:
        raise ValueError('calibration inputs must be batches of one image '
                         f'(1, 3, H, W), not {array.shape}')
    return np.ascontiguousarray(array[0], np.float32)


def run_and_extract(net, image: np.ndarray,
                    blob_names: Iterable[str]) -> Iterator[Tuple[str, Any]]:
    """Run ``net`` on ``image`` (C, H, W) and yield the name and ncnn.Mat of
    each blob, in the order given (that of the .param file, so that each
    extraction only computes further)."""
    import ncnn
    mat = ncnn.Mat(image)  # shares the memory of image: keep it until done
    with net.create_extractor() as extractor:
        extractor.input(INPUT_NAME, mat)
        for name in blob_names:
            status, blob = extractor.extract(name)
            if status != 0 or blob.empty():
                raise RuntimeError(f'ncnn cannot compute the blob {name}')
            yield name, blob


def batch_items(blob) -> List[np.ndarray]:
    """The values of an ncnn.Mat, one array per item of its batch axis
    (pnnx gives a blob one when the traced tensor had a batch of several,
    e.g. MobileViT's patch pixels; numpy only sees the first)."""
    return [np.array(blob.batch(i)) for i in range(blob.n)]


def blob_shapes(param_file: str, bin_file: str, image: np.ndarray,
                blob_names: Sequence[str]) -> Dict[str, Tuple[int, ...]]:
    """The shapes of ``blob_names`` (in the order of the .param file) when
    the model runs on ``image`` (1, C, H, W): ncnn's batch size (1 for most
    blobs), then the sizes of an item outermost first, as numpy gives them:
    (n, w), (n, h, w), (n, c, h, w) or (n, c, d, h, w)."""
    net = new_net(param_file, bin_file)
    shapes = {}
    for name, blob in run_and_extract(net, check_input(image), blob_names):
        # Mat's sizes, not its data: an int8 blob has no fp32 view
        sizes = {
            1: (blob.w, ),
            2: (blob.h, blob.w),
            3: (blob.c, blob.h, blob.w)
        }
        shapes[name] = (blob.n, *sizes.get(blob.dims,
                                           (blob.c, blob.d, blob.h, blob.w)))
    return shapes


def collect_thresholds(param_file: str,
                       bin_file: str,
                       calibration_inputs: Sequence[np.ndarray],
                       blob_names: Sequence[str],
                       method: str = 'percentile',
                       percentile: float = 99.99) -> Dict[str, float]:
    """Run the fp32 model on each calibration input and give the threshold
    (the absolute value mapped to 127) of each of ``blob_names``.

    Args:
        param_file (str): The fp32 .param file.
        bin_file (str): Its .bin file.
        calibration_inputs (Sequence[np.ndarray]): Preprocessed images,
            each (1, 3, H, W) fp32, for the blob ``input``.
        blob_names (Sequence[str]): The blobs, in the order of the .param
            file.
        method (str): One of :data:`calibration.CALIBRATION_METHODS`.
        percentile (float): For the ``percentile`` method.

    Raises:
        ValueError: No calibration input.
    """
    if not len(calibration_inputs):
        raise ValueError('at least one calibration input is needed')
    net = new_net(param_file, bin_file)
    observers = {
        name: ActivationObserver(method, percentile)
        for name in blob_names
    }
    for array in calibration_inputs:
        for name, blob in run_and_extract(net, check_input(array), blob_names):
            for values in batch_items(blob):
                observers[name].observe(values)
    return {name: obs.threshold() for name, obs in observers.items()}


def uses_winograd(layer: NcnnLayer) -> bool:
    """Whether ncnn may run a Convolution with Winograd's algorithm: 3x3,
    stride 1, dilation 1."""
    kernel, stride, dilation = layer.get(1), layer.get(3, 1), layer.get(2, 1)
    return (kernel == layer.get(11, kernel) == 3
            and stride == layer.get(13, stride) == 1
            and dilation == layer.get(12, dilation) == 1)


def quantize_layer(layer: NcnnLayer, blobs: List[WeightBlob],
                   input_scale: Optional[float]) -> List[WeightBlob]:
    """Quantize ``layer`` (its parameters, in place) and give its new
    weight reads, as ncnn2int8 writes them: the int8 weights, the bias as
    it was, the weight scales and the input scale (none for Gemm)."""
    kind = layer.kind
    if kind == 'Gemm':
        return quantize_gemm(layer, blobs)
    weights = blobs[0].to_float32()
    if kind == 'ConvolutionDepthWise':
        rows = weights.reshape(layer.get(7, 1), -1)  # a scale per group
    else:
        rows = weights.reshape(layer.get(0), -1)  # a scale per output
    if kind == 'Convolution' and uses_winograd(layer):
        layer.set(31, layer.get(31) | NO_WINOGRAD)
    scales = weight_scales(rows)
    layer.set(8, INT8_TERM[kind])
    return [
        WeightBlob.int8(quantize_symmetric(rows, scales[:, None])), *blobs[1:],
        WeightBlob.raw(scales),
        WeightBlob.raw(np.float32([input_scale]))
    ]


def quantize_gemm(layer: NcnnLayer,
                  blobs: List[WeightBlob]) -> List[WeightBlob]:
    """Gemm with constant B: B stored (N, K) in int8 with one scale, C as
    it was, then the scale."""
    n, k = layer.get(8), layer.get(9)
    weights = blobs[0].to_float32()
    if layer.get(3):  # transB: already (N, K)
        weights = weights.reshape(n, k)
    else:
        weights = weights.reshape(k, n).T
        layer.set(3, 1)
    scale = weight_scales(weights.reshape(1, -1))
    layer.set(18, INT8_TERM['Gemm'])
    return [
        WeightBlob.int8(quantize_symmetric(weights, scale[0])), *blobs[1:],
        WeightBlob.raw(scale)
    ]


def requantize_pairs(param: NcnnParam,
                     input_scales: Dict[str, float]) -> Dict[int, int]:
    """ncnn2int8's requantize fusion: for each quantized Convolution or
    ConvolutionDepthWise whose output only one layer reads, a quantized
    convolution of either type, the indices of the two layers."""
    convolutions = ('Convolution', 'ConvolutionDepthWise')
    readers = param.consumers()
    pairs = {}
    for i, layer in enumerate(param.layers):
        if layer.kind not in convolutions or layer.name not in input_scales:
            continue
        after = readers.get(layer.tops[0], [])
        if len(after) != 1:
            continue
        reader = param.layers[after[0]]
        if (reader.kind in convolutions and reader.name in input_scales
                and len(reader.bottoms) == 1):
            pairs[i] = after[0]
    return pairs


def matrix_input_layers(param_file: str, bin_file: str, param: NcnnParam,
                        indices: Sequence[int], image: np.ndarray) -> Set[int]:
    """The InnerProduct layers among ``indices`` of ``param`` that multiply
    a matrix (each row: ncnn's "gemm" mode, a 2-D input as wide as the
    weights) when the model runs on ``image`` (1, C, H, W)."""
    linear = [i for i in indices if param.layers[i].kind == 'InnerProduct']
    if not linear:
        return set()
    shapes = blob_shapes(param_file, bin_file, image,
                         [param.layers[i].bottoms[0] for i in linear])
    return {
        i
        for i in linear
        if is_matrix_input(param.layers[i], shapes[param.layers[i].bottoms[0]])
    }


def is_matrix_input(layer: NcnnLayer, shape: Tuple[int, ...]) -> bool:
    """Whether InnerProduct ``layer`` takes its input of ``shape`` (batch
    first) as a matrix, as InnerProduct::forward decides (otherwise it
    flattens it)."""
    num_input = layer.get(2) // layer.get(0)
    return len(shape) == 3 and shape[-1] == num_input


def quantize_ncnn(param_file: str,
                  bin_file: str,
                  out_prefix: str,
                  calibration_inputs: Sequence[np.ndarray],
                  method: str = 'percentile',
                  exclude: Iterable[str] = (),
                  percentile: float = 99.99,
                  requantize: bool = True,
                  int8_token_linear: bool = False) -> List[str]:
    """Quantize an fp32 ncnn model to int8 (``out_prefix.param`` and
    ``out_prefix.bin``) in the format of ncnn2table and ncnn2int8.

    The input scale of each quantized Convolution, ConvolutionDepthWise and
    InnerProduct is ``127 / threshold`` of its input blob, on the
    calibration inputs (fp32 model, :func:`collect_thresholds`). The files
    appear only once both are written, and may replace the input files.

    Args:
        param_file (str): The fp32 .param file (e.g. from
            :func:`edgeformer_mm.deployment.convert_to_ncnn`).
        bin_file (str): Its .bin file.
        out_prefix (str): Path of the int8 files without their extension.
        calibration_inputs (Sequence[np.ndarray]): Preprocessed images,
            each (1, 3, H, W) fp32, for the input blob ``input``.
        method (str): The calibration method: 'minmax', 'percentile' or
            'entropy' (ncnn2table's default, KL divergence; it clipped too much
            on the tiny sets, see docs/deployment.md#int8).
        exclude (Iterable[str]): Names of layers kept in fp32 (see
            :func:`quantizable_layers` for the candidates, e.g. the first
            and the last).
        percentile (float): The percentile of the 'percentile' method.
        requantize (bool): Let a convolution that only feeds another
            quantized convolution write int8 for it (ncnn2int8's fusion).
        int8_token_linear (bool): Quantize the InnerProduct layers whose
            input is a matrix too (slower than fp32 on x86, see the module
            docstring).

    Returns:
        list[str]: The .param and .bin paths.
    """
    param = NcnnParam.read(param_file)
    with open(bin_file, 'rb') as f:
        weights = read_weights(param, f.read())
    exclude = set(exclude)
    unknown = exclude - {layer.name for layer in param.layers}
    if unknown:
        raise ValueError(f'no layers named {sorted(unknown)} in {param_file}')
    chosen = [
        i for i, layer in enumerate(param.layers)
        if can_quantize(layer) and layer.name not in exclude
    ]
    calibrated = [i for i in chosen if param.layers[i].kind != 'Gemm']
    if calibrated and not len(calibration_inputs):
        raise ValueError('at least one calibration input is needed')
    if calibrated and not int8_token_linear:
        token_linear = matrix_input_layers(param_file, bin_file, param,
                                           calibrated, calibration_inputs[0])
        chosen = [i for i in chosen if i not in token_linear]
        calibrated = [i for i in calibrated if i not in token_linear]
    blob_names = [param.layers[i].bottoms[0] for i in calibrated]
    thresholds = collect_thresholds(param_file, bin_file, calibration_inputs,
                                    blob_names, method,
                                    percentile) if calibrated else {}
    input_scales = {
        # a blob of zeros: any scale quantizes it exactly
        param.layers[i].name:
        127 / thresholds[blob] if thresholds[blob] else 1.
        for i, blob in zip(calibrated, blob_names)
    }
    for i in chosen:
        weights[i] = quantize_layer(param.layers[i], weights[i],
                                    input_scales.get(param.layers[i].name))
    if requantize:
        for i, j in requantize_pairs(param, input_scales).items():
            layer = param.layers[i]
            layer.set(8, layer.get(8) + REQUANTIZE)
            output_scale = input_scales[param.layers[j].name]
            weights[i].append(WeightBlob.raw(np.float32([output_scale])))
    return write_files(param, weights, out_prefix)


def write_files(param: NcnnParam, weights: List[List[WeightBlob]],
                out_prefix: str) -> List[str]:
    """Write ``out_prefix.param`` and ``.bin`` through temporary files: no
    half-written model, never a new .bin beside an old .param."""
    files = [out_prefix + '.param', out_prefix + '.bin']
    out_dir = osp.dirname(osp.abspath(out_prefix))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix='.ncnn-int8-') as tmp:
        temporary = [osp.join(tmp, 'model.param'), osp.join(tmp, 'model.bin')]
        with open(temporary[0], 'w') as f:
            f.write(param.text())
        with open(temporary[1], 'wb') as f:
            for blobs in weights:
                for blob in blobs:
                    f.write(blob.to_bytes())
        if osp.exists(files[0]):
            os.remove(files[0])
        # the weights first: a .param file only appears beside its .bin
        for source, target in [(temporary[1], files[1]),
                               (temporary[0], files[0])]:
            os.replace(source, target)
    return files


# The layers whose multiply-accumulates layer_macs counts.
MAC_TYPES = ('Convolution', 'ConvolutionDepthWise', 'InnerProduct', 'Gemm',
             'MatMul', 'SDPA')


def layer_macs(param_file: str, bin_file: str,
               input_shape: Tuple[int, int, int, int]) -> Dict[str, int]:
    """The multiply-accumulates of each layer that multiplies tensors
    (:data:`MAC_TYPES`) for an input of ``input_shape`` (1, 3, H, W), from
    the blob shapes of a run of the model: the output size times the
    products per output."""
    param = NcnnParam.read(param_file)
    layers = [layer for layer in param.layers if layer.kind in MAC_TYPES]
    # the blobs in the order of the .param file, each once
    producer = {
        top: i
        for i, layer in enumerate(param.layers)
        for top in layer.tops
    }
    blob_names = sorted(
        {blob
         for layer in layers
         for blob in layer.bottoms + layer.tops[:1]},
        key=producer.get)
    shapes = blob_shapes(param_file, bin_file,
                         np.zeros(input_shape, np.float32), blob_names)
    macs = {}
    for layer in layers:
        out_size = int(np.prod(shapes[layer.tops[0]]))
        first = shapes[layer.bottoms[0]]
        if layer.kind in ('Convolution', 'ConvolutionDepthWise'):
            per_output = layer.get(6) / layer.get(0)
        elif layer.kind == 'InnerProduct':
            per_output = layer.get(2) / layer.get(0)
        elif layer.kind == 'Gemm':  # K: constant, or A's (transA) columns
            per_output = layer.get(9) or first[-2 if layer.get(2) else -1]
        elif layer.kind == 'MatMul':
            per_output = first[-1]
        else:  # SDPA: Q K^T, then the scores times V, over the keys
            keys = shapes[layer.bottoms[1]][-2]
            per_output = keys * (1 + np.prod(first) / out_size)
        macs[layer.name] = int(round(out_size * per_output))
    return macs


def int8_mac_fraction(param_file: str, bin_file: str,
                      input_shape: Tuple[int, int, int, int]) -> float:
    """The share of the multiply-accumulates of :func:`layer_macs` in the
    layers ncnn runs in int8."""
    macs = layer_macs(param_file, bin_file, input_shape)
    int8 = set(int8_layers(param_file))
    return sum(macs[name]
               for name in macs if name in int8) / sum(macs.values())
