"""MNN's own int8 post-training quantization (its ``quantized.out``, the
``mnnquant`` of the ``mnn`` package) of an fp32 MNN model, calibrated on
our preprocessed network inputs.

MNN reads the calibration set as a folder of samples; with ``"input_type":
"sequence"`` each sample is a folder holding ``<input name>.txt`` (the
tensor's values, whitespace-separated, in the model's input layout) and
``input.json`` (its shape) instead of an image that MNN would preprocess
itself (tools/quantization/calibration.cpp, ``getModuleInputs``). The
tensors given here (what :func:`.quantization.image_inputs` or
:func:`.quantization.dataset_inputs` return, as for
:func:`.quantization.quantize_onnx`) are written so and are exactly what
the network is calibrated on.

MNN quantizes convolutions (the linear layers become 1x1 convolutions) to
full int8: int8 weights per output channel (``weight_quantize_method``
``MAX_ABS``: the largest absolute value; or ``ADMM``), int8 activations
per tensor, symmetric. Every other operator, the products of matrices
(``MatMul``: the GCC's products with its constant circulant matrices, the
attention of the transformers) included, stays fp32.

The quantizer runs in a subprocess of ``_tools`` (the compiled module of
the ``mnn`` package; ``MNN.tools``, the package's Python wrapper, is never
imported: it installs packages and sends telemetry): a failing quantizer
aborts the process (C++ exceptions), and its progress output is captured.
"""
import collections
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from edgeformer_runtime.backends import captured_output
from .calibration import CALIBRATION_METHODS
from .quantization import FP32_LAYER_CHOICES, CalibrationError, end_layers

# MNN's activation calibrations (``feature_quantize_method``).
MNN_FEATURE_METHODS = ('KL', 'ADMM', 'EMA')
MNN_WEIGHT_METHODS = ('MAX_ABS', 'ADMM')
# Our calibration method -> MNN's, where one corresponds: ``entropy`` is
# the same algorithm as MNN's KL (TensorRT's: the threshold of least KL
# divergence over a 2048-bin histogram of |x|; MNN keeps the zeros in the
# histogram and takes the maximum for the network input). ``minmax`` has no
# exact counterpart: MNN's EMA is an exponential moving average of each
# batch's range (a fake-quantization pass of its training module), not the
# range over the whole set. ``percentile`` has none. ADMM (the scale that
# minimizes the squared quantization error of a tensor) is not ours; with
# sequence inputs MNN computes it on one sample only (the last).
# mnn 3.6.1's KL crashes (SIGSEGV, SIGBUS) on the tiny segmentation and
# detection graphs, probably the bug MNN fixed after 3.6.1 ("Fix SIGSEGV in
# KL PTQ when Raster has no valid indexed inputs"); EMA and ADMM run.
CALIBRATION_TO_MNN = {'entropy': 'KL', 'minmax': 'EMA', 'percentile': None}
# MNN operators that its quantizer turns to int8.
MNN_QUANTIZABLE_OPS = ('Convolution', 'ConvolutionDepthwise')
# MNN operators that compute products (the MACs).
MNN_COMPUTE_OPS = MNN_QUANTIZABLE_OPS + ('MatMul', 'BatchMatMul',
                                         'Deconvolution')
# Progress lines of the quantizer, left out of the log.
_PROGRESS = re.compile(r'(\r|^)[A-Za-z ]+: \d+\.\d+ %')


class MnnQuantizationError(RuntimeError):
    """MNN's quantizer failed or wrote no model."""


def mnn_method(method: str) -> str:
    """MNN's ``feature_quantize_method`` for ``method``: one of ours
    (:data:`CALIBRATION_TO_MNN`) or MNN's own (:data:`MNN_FEATURE_METHODS`).
    """
    if method in MNN_FEATURE_METHODS:
        return method
    if method not in CALIBRATION_TO_MNN:
        raise ValueError(
            f'unknown calibration method {method!r}; one of '
            f'{", ".join(CALIBRATION_METHODS + MNN_FEATURE_METHODS)}')
    if CALIBRATION_TO_MNN[method] is None:
        raise ValueError(
            f'MNN has no {method!r} calibration; use entropy (its KL), '
            f'minmax (its EMA, a moving average of ranges) or one of '
            f'{", ".join(MNN_FEATURE_METHODS)}')
    return CALIBRATION_TO_MNN[method]


def run_mnn_tool(function: str,
                 args: Sequence[str],
                 timeout: Optional[float] = None) -> str:
    """Run ``_tools.<function>(args)`` (``mnnconvert`` or ``mnnquant``,
    whose ``args`` are a command line, the program's name first) in a
    subprocess; its output (stdout and stderr).

    Raises:
        MnnQuantizationError: The subprocess failed (the output's tail).
    """
    code = ('import sys, _tools; '
            f'_tools.{function}(sys.argv[1:])')
    result = subprocess.run([sys.executable, '-c', code, *args],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True,
                            errors='replace',
                            timeout=timeout)
    if result.returncode != 0:
        raise MnnQuantizationError(
            f'MNN {function} failed (exit status {result.returncode}):\n'
            f'{_clean_log(result.stdout)[-3000:]}')
    return result.stdout


def _clean_log(text: str) -> str:
    """The tool's output without its progress counters."""
    lines = []
    for line in text.splitlines():
        line = _PROGRESS.sub('', line.split('\r')[-1]).strip()
        if line and not line.startswith('The device supports'):
            lines.append(line)
    return '\n'.join(lines)


def mnn_model_json(model_file: str) -> dict:
    """An MNN model as its converter dumps it to JSON (ops, tensor names,
    quantization parameters)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'model.json')
        run_mnn_tool('mnnconvert', [
            'mnnconvert', '-f', 'MNN', '--modelFile', model_file, '--JsonFile',
            path
        ])
        if not osp.exists(path):
            raise MnnQuantizationError(f'MNN could not read {model_file}')
        with open(path) as f:
            return json.load(f)


def write_sequence_inputs(inputs: Sequence[np.ndarray],
                          directory: str,
                          input_name: str = 'input') -> int:
    """Write ``inputs`` as MNN's sequence calibration samples: one folder
    each (named in their order), with ``<input_name>.txt`` and
    ``input.json``; their number."""
    inputs = _checked_inputs(inputs)
    for index, x in enumerate(inputs):
        sample = osp.join(directory, f'{index:06d}')
        os.makedirs(sample)
        x.ravel().tofile(osp.join(sample, f'{input_name}.txt'), ' ', '%.9g')
        with open(osp.join(sample, 'input.json'), 'w') as f:
            json.dump(
                dict(inputs=[dict(name=input_name, shape=list(x.shape))]), f)
    return len(inputs)


def _checked_inputs(inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
    """``inputs`` as (1, C, H, W) float32, all of one shape, finite."""
    checked, shape = [], None
    for index, x in enumerate(inputs):
        x = np.asarray(x, np.float32)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[0] != 1:
            raise CalibrationError(
                f'calibration input {index} has shape {x.shape}; (1, C, H, '
                'W) or (C, H, W) expected')
        if shape is None:
            shape = x.shape
        elif x.shape != shape:
            raise CalibrationError(
                f'calibration input {index} has shape {x.shape}, the first '
                f'{shape}')
        if not np.isfinite(x).all():
            raise CalibrationError(f'calibration input {index} is not finite')
        checked.append(x)
    return checked


def quantize_mnn(fp32_mnn: str,
                 int8_mnn: str,
                 inputs: Sequence[np.ndarray],
                 method: str = 'KL',
                 weight_method: str = 'MAX_ABS',
                 fp32_layers: Iterable[str] = (),
                 input_name: str = 'input',
                 timeout: Optional[float] = None) -> dict:
    """Quantize an fp32 MNN model to int8 with MNN's quantizer, calibrated
    on ``inputs``.

    Args:
        fp32_mnn (str): The fp32 model (MNN's converter of an ONNX file).
        int8_mnn (str): The int8 model; appears only once complete.
        inputs (list[np.ndarray]): Calibration inputs, (1, C, H, W) or
            (C, H, W) float32, preprocessed: what the network takes.
        method (str): Activation calibration: ours (``entropy``,
            ``minmax``; see :data:`CALIBRATION_TO_MNN`) or MNN's (``KL``,
            ``ADMM``, ``EMA``).
        weight_method (str): ``MAX_ABS`` or ``ADMM``.
        fp32_layers (Iterable[str]): Keep these of ``first``, ``last`` in
            fp32 (as :func:`.quantization.end_layers` finds them in the MNN
            graph; MNN's ``skip_quant_op_names``; not with EMA, which
            ignores it).
        input_name (str): The model's input.
        timeout (float, optional): Seconds the quantizer may take.

    Returns:
        dict: ``method`` (MNN's feature_quantize_method asked),
        ``method_used`` (MNN turns to EMA on a graph with BatchNorm),
        ``weight_method``, ``calibration`` (number of inputs),
        ``calibration_used`` (how many MNN calibrates on: with sequence
        inputs its ADMM runs the network once, on the last one; a batch of
        them instead fails on EdgeFormer's graph, whose reshapes are
        static),
        ``int8_layers`` / ``layers`` (counts of compute operators: int8
        convolutions / all), ``int8_layer_names``, ``fp32_layer_names``
        (compute operators left fp32, ``name (type)``), ``skipped`` (the
        op names asked to be fp32), ``op_types`` (operator counts of the
        int8 model), ``input_scale`` (the int8 scale of the network input,
        e.g. max |x| / 127 with KL), ``fp32_bytes``, ``int8_bytes``,
        ``int8_macs`` and ``macs`` (MNN's count of the compute operators
        as its session runs them on the first input, see
        :func:`mnn_profile`), and ``log`` (MNN's output, without progress
        counters).
    """
    feature_method = mnn_method(method)
    if weight_method not in MNN_WEIGHT_METHODS:
        raise ValueError(f'weight_method must be one of {MNN_WEIGHT_METHODS}, '
                         f'not {weight_method!r}')
    if len(inputs) == 0:
        raise CalibrationError('the calibration set is empty')
    fp32_layers = list(fp32_layers)
    unknown = set(fp32_layers) - set(FP32_LAYER_CHOICES)
    if unknown:
        raise ValueError(f'fp32_layers must be of {FP32_LAYER_CHOICES}, not '
                         f'{sorted(unknown)}')
    if fp32_layers and feature_method == 'EMA':
        raise ValueError('MNN\'s EMA calibration cannot keep layers in fp32')
    if not osp.exists(fp32_mnn):
        raise FileNotFoundError(fp32_mnn)
    skipped = []
    if fp32_layers:
        ends = mnn_end_layers(mnn_model_json(fp32_mnn), input_name)
        skipped = [name for choice in fp32_layers for name in ends[choice]]

    out_dir = osp.dirname(osp.abspath(int8_mnn))
    with tempfile.TemporaryDirectory() as tmp:
        samples = osp.join(tmp, 'samples')
        os.makedirs(samples)
        folders = write_sequence_inputs(inputs, samples, input_name)
        config = dict(
            path=samples + '/',
            used_sample_num=folders,
            input_type='sequence',
            feature_quantize_method=feature_method,
            weight_quantize_method=weight_method,
            feature_clamp_value=127,
            weight_clamp_value=127,
            batch_size=1,
            quant_bits=8,
            skip_quant_op_names=skipped,
            debug=False)
        config_file = osp.join(tmp, 'config.json')
        with open(config_file, 'w') as f:
            json.dump(config, f, indent=1)
        partial = osp.join(tmp, 'int8.mnn')
        output = run_mnn_tool('mnnquant',
                              ['mnnquant', fp32_mnn, partial, config_file],
                              timeout)
        log = _clean_log(output)
        if not osp.exists(partial) or 'Quantize model done' not in output:
            raise MnnQuantizationError(
                f'MNN wrote no int8 model:\n{log[-3000:]}')
        os.makedirs(out_dir, exist_ok=True)
        shutil.move(partial, int8_mnn)
    method_used = ('EMA' if 'use EMA quantize method instead' in output else
                   feature_method)
    report = dict(
        method=feature_method,
        method_used=method_used,
        weight_method=weight_method,
        calibration=len(inputs),
        calibration_used=1 if feature_method == 'ADMM' else len(inputs),
        skipped=skipped,
        fp32_bytes=osp.getsize(fp32_mnn),
        int8_bytes=osp.getsize(int8_mnn),
        log=log)
    report.update(mnn_int8_layers(int8_mnn, input_name))
    if report['int8_layers'] == 0:
        # e.g. a shape error while calibrating: MNN still says done and
        # writes the fp32 model.
        os.remove(int8_mnn)
        raise MnnQuantizationError(f'MNN quantized no layer:\n{log[-3000:]}')
    report.update(mnn_int8_macs(mnn_profile(int8_mnn, inputs[0])))
    return report


def mnn_end_layers(model: dict, input_name: str = 'input') -> dict:
    """:func:`.quantization.end_layers` of an MNN model's JSON dump (the
    quantizable operators are its convolutions)."""
    names = model['tensorName']
    layers = [(op['name'], op['type'] in MNN_QUANTIZABLE_OPS,
               [names[i] for i in op.get('inputIndexes', [])
                ], [names[i] for i in op.get('outputIndexes', [])])
              for op in model['oplists']]
    return end_layers(layers, input_name)


def _is_int8(op: dict) -> bool:
    return 'symmetricQuan' in op.get(
        'main',
        {}) and op['main']['symmetricQuan'].get('outputDataType') == 'DT_INT8'


def mnn_int8_layers(model_file: str, input_name: str = 'input') -> dict:
    """Which compute operators of an MNN model run in int8 (see
    :func:`quantize_mnn`'s report)."""
    model = mnn_model_json(model_file)
    ops = model['oplists']
    compute = [op for op in ops if op['type'] in MNN_COMPUTE_OPS]
    int8 = [op['name'] for op in compute if _is_int8(op)]
    fp32 = [
        f'{op["name"]} ({op["type"]})' for op in compute if not _is_int8(op)
    ]
    figures = dict(
        int8_layers=len(int8),
        layers=len(compute),
        int8_layer_names=int8,
        fp32_layer_names=fp32,
        op_types=dict(collections.Counter(op['type'] for op in ops)))
    names = model['tensorName']
    scales = {
        d['index']: d['quantInfo']['scale']
        for d in model.get('extraTensorDescribe', []) if 'quantInfo' in d
    }
    if input_name in names:
        figures['input_scale'] = scales.get(names.index(input_name))
    return figures


def mnn_int8_macs(records: Sequence[dict]) -> dict:
    """``int8_macs`` and ``macs`` of :func:`mnn_profile`'s records: of
    the convolutions and products of matrices (``While``: MNN's loops of
    them), and of those that run in int8."""
    compute = [
        r for r in records
        if r['type'].split(' [')[0] in MNN_COMPUTE_OPS + ('While', )
    ]
    return dict(
        int8_macs=sum(r['macs'] for r in compute if r['int8']),
        macs=sum(r['macs'] for r in compute))


def mnn_profile(model_file: str,
                x: np.ndarray,
                threads: int = 1,
                runs: int = 1) -> List[dict]:
    """Run an MNN model on ``x`` through an Interpreter session with MNN's
    per-operator callbacks: for each operator as MNN executes it (after its
    graph rewrites: a convolution's input conversions, products of
    matrices as ``While`` loops of them), ``name``, ``type`` (with
    `` [ DT_INT8 ]`` where it runs in int8), ``int8``, ``macs`` (MNN's
    count, in multiply-accumulates), ``ms`` and ``min_ms`` (the median and
    the least over ``runs`` runs after a warm-up; the Python callbacks add
    some microseconds to each)."""
    with captured_output():
        import MNN
        interpreter = MNN.Interpreter(model_file)
        session = interpreter.createSession({
            'backend': 'CPU',
            'numThread': threads,
            'precision': 'high'
        })
    tensor = interpreter.getSessionInput(session)
    x = np.ascontiguousarray(x, np.float32).reshape(tensor.getShape())
    tensor.copyFrom(
        MNN.Tensor(
            list(x.shape), MNN.Halide_Type_Float, x,
            MNN.Tensor_DimensionType_Caffe))
    records, times = [], []

    def begin(_, info):
        times.append(time.perf_counter())
        return True

    def end(_, info):
        times[-1] = time.perf_counter() - times[-1]
        if first[0]:
            kind = info.getType().strip()
            records.append(
                dict(
                    name=info.getName(),
                    type=kind,
                    int8='DT_INT8' in kind,
                    macs=int(round(info.getFlops() * 1e6)),
                    ms=[]))
        return True

    first = [False]
    interpreter.runSessionWithCallBackInfo(session, begin, end)  # warm-up
    for run in range(runs):
        first[0] = run == 0
        times.clear()
        interpreter.runSessionWithCallBackInfo(session, begin, end)
        for record, seconds in zip(records, times):
            record['ms'].append(1000 * seconds)
    for record in records:
        record['min_ms'] = float(np.min(record['ms']))
        record['ms'] = float(np.median(record['ms']))
    return records


def profile_summary(records: Sequence[dict]) -> Dict[str, dict]:
    """Operator kinds (type, int8 tag included) -> ``count``, ``macs``,
    ``ms`` and ``min_ms`` (sums), most time first."""
    kinds = collections.defaultdict(
        lambda: dict(count=0, macs=0, ms=0., min_ms=0.))
    for record in records:
        kind = kinds[record['type']]
        kind['count'] += 1
        kind['macs'] += record['macs']
        kind['ms'] += record['ms']
        kind['min_ms'] += record['min_ms']
    return dict(sorted(kinds.items(), key=lambda item: -item[1]['ms']))
