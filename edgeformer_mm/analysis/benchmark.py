"""Speed, size and memory of classification models on this machine's CPU.

Models with random weights, batch 1: parameters, MACs
(:func:`edgeformer_mm.utils.count_macs` for every model: convolutions,
linear layers and matrix products), peak memory of one eager inference, and
latency in eager PyTorch (models with a deploy mode also baked for the input
size), ONNX Runtime and ncnn (fp32, and int8: ``*-int8``, see
:func:`convert_classifier`; the runtimes get the baked models), and where
asked MNN, OpenVINO, ExecuTorch and LiteRT, at each thread count; each
runtime's conversion time and difference from ONNX Runtime. All cases run
interleaved in rounds inside one process, so that drift hits them alike; a
latency is the median over rounds of each round's median, the spread is
(max - min) / median of the round medians.
"""
import copy
import os
import os.path as osp
import platform
import statistics
import tempfile
import time
import warnings
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
from mmpretrain import get_model
from torch import Tensor, nn

from edgeformer_mm.deployment import (ExportGraph, NcnnRunner,
                                      convert_onnx_to_mnn, convert_to_ncnn,
                                      image_inputs, quantize_mnn,
                                      quantize_ncnn_model, quantize_onnx)
from edgeformer_mm.deployment.executorch import export_executorch
from edgeformer_mm.deployment.litert import export_litert
from edgeformer_mm.deployment.openvino import compile_onnx
from edgeformer_mm.utils import count_macs, count_parameters
from edgeformer_runtime.backends import (ExecuTorchProgram, LiteRTModel,
                                         MnnModule)

# Name in the tables -> mmpretrain model name.
BENCHMARK_MODELS = {
    'EdgeFormer-XS': 'edgeformer-xs_8xb128_in1k',
    'EdgeFormer-S': 'edgeformer-s_8xb128_in1k',
    'EdgeFormer-H': 'edgeformer-h_8xb128_in1k',
    'MobileViT-XS': 'mobilevit-xsmall_3rdparty_in1k',
    'MobileViT-S': 'mobilevit-small_3rdparty_in1k',
    'EdgeNeXt-XXS': 'edgenext-xxsmall_3rdparty_in1k',
    'EdgeNeXt-XS': 'edgenext-xsmall_3rdparty_in1k',
    'EdgeNeXt-S': 'edgenext-small_3rdparty_in1k',
    'MobileNetV2': 'mobilenet-v2_32xb128-convnext-recipe_in1k',
    'ParC-MobileNetV2': 'parc-mobilenet-v2_32xb128_in1k',
    'ResNet-50': 'resnet50_32xb128-convnext-recipe_in1k',
    'ParC-ResNet-50': 'parc-resnet50_32xb128_in1k',
    'ConvNeXt-XT': 'convnext-xt_32xb128_in1k',
    'ParC-ConvNeXt-XT': 'parc-convnext-xt_32xb128_in1k',
}
# EdgeFormer next to the mobile transformers it is compared with.
EDGEFORMER_COMPARISON = ('EdgeFormer-XS', 'EdgeFormer-S', 'EdgeFormer-H',
                         'MobileViT-XS', 'MobileViT-S', 'EdgeNeXt-XXS',
                         'EdgeNeXt-XS', 'EdgeNeXt-S')
# ParC ConvNet -> its plain counterpart.
PARC_PAIRS = {
    'ParC-MobileNetV2': 'MobileNetV2',
    'ParC-ResNet-50': 'ResNet-50',
    'ParC-ConvNeXt-XT': 'ConvNeXt-XT',
}
BENCHMARK_BACKENDS = ('pytorch', 'pytorch-deploy', 'onnxruntime', 'ncnn',
                      'onnxruntime-int8', 'ncnn-int8')
# Runtimes timed when asked for (--backends): MNN (fp32, and int8 by its own
# quantizer), OpenVINO (reading the ONNX file), ExecuTorch with XNNPACK and
# LiteRT (extras, torch.export of the baked models).
OTHER_BACKENDS = ('mnn', 'mnn-int8', 'openvino', 'executorch', 'litert')
# MNN's quantizer has no percentile calibration: its EMA, as the MNN int8
# deploy configs.
MNN_INT8_METHOD = 'minmax'
# The resolution sweep times these, at 1 thread.
SWEEP_BACKENDS = ('pytorch', 'onnxruntime')

Size = Tuple[int, int]


def parse_size(text: str) -> Size:
    """(height, width) of ``'H'`` or ``'HxW'``."""
    height, _, width = text.partition('x')
    return int(height), int(width or height)


def size_name(size: Size) -> str:
    """``'HxW'``, as sizes appear in results and tables."""
    return f'{size[0]}x{size[1]}'


def has_deploy_mode(model: nn.Module) -> bool:
    """Whether the model bakes its kernels for an input size (EdgeFormer's
    GCCs, the ParC ConvNets')."""
    return hasattr(model.backbone, 'switch_to_deploy')


def deployed(model: nn.Module, size: Size) -> nn.Module:
    """A copy of ``model`` baked for ``size`` if it has a deploy mode;
    otherwise ``model`` itself."""
    if not has_deploy_mode(model):
        return model
    model = copy.deepcopy(model)
    model.backbone.switch_to_deploy(size)
    return model


class Case:
    """One thing to time: a model on a backend at a size and thread count.

    Args:
        model_name (str): The model's name in the tables.
        backend (str): One of :data:`BENCHMARK_BACKENDS`.
        size (tuple[int, int]): (height, width) of the input.
        threads (int): The thread count.
        run (Callable): Runs the model once.
    """

    def __init__(self, model_name: str, backend: str, size: Size, threads: int,
                 run: Callable[[], object]):
        self.key = (model_name, backend, size_name(size), threads)
        self.threads = threads
        self.run = run
        self.round_medians = []

    def time_round(self, runs: int):
        """Time ``runs`` runs and keep their median."""
        torch.set_num_threads(self.threads)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self.run()
            times.append(time.perf_counter() - start)
        self.round_medians.append(statistics.median(times))

    def figures(self) -> Dict[str, float]:
        """``latency_ms``: the median of the round medians; ``spread``:
        their (max - min) / median."""
        medians = self.round_medians
        latency = statistics.median(medians)
        return dict(
            latency_ms=1000 * latency,
            spread=(max(medians) - min(medians)) / latency)


def make_cases(
        name: str, model: nn.Module, backends: Sequence[str], size: Size,
        threads_list: Sequence[int],
        tmp_dir: str) -> Tuple[List[Case], Dict[str, str], Dict[str, dict]]:
    """The cases of one model at one size; the conversions happen here.

    Returns:
        tuple[list[Case], dict, dict]: The cases; the error of each backend
        whose conversion failed (the others are still timed); and for each
        runtime, ``seconds`` (its conversion and loading, also of the ONNX
        file it starts from where that is not made yet) and, for the fp32
        ones, ``max_diff`` (the largest class score difference from ONNX
        Runtime's on the same input, where ONNX Runtime is timed too).
    """
    x = torch.rand(1, 3, *size)
    cases, failures, conversions, scores = [], {}, {}, {}
    for backend in backends:
        if backend == 'pytorch-deploy' and not has_deploy_mode(model):
            continue
        start = time.perf_counter()
        try:
            runners = backend_runners(name, model, backend, size, x,
                                      threads_list, tmp_dir)
        except Exception as error:  # report, keep benchmarking the rest
            failures[backend] = f'{type(error).__name__}: {error}'[:300]
            continue
        if not backend.startswith('pytorch'):
            conversions[backend] = dict(seconds=time.perf_counter() - start)
            scores[backend] = np.asarray(runners[0]()).reshape(-1)
        for threads, run in zip(threads_list, runners):
            cases.append(Case(name, backend, size, threads, run))
    if 'onnxruntime' in scores:
        for backend, value in scores.items():
            if not backend.endswith('-int8'):
                conversions[backend]['max_diff'] = float(
                    np.abs(value - scores['onnxruntime']).max())
    return cases, failures, conversions


def backend_runners(name: str, model: nn.Module, backend: str, size: Size,
                    x: Tensor, threads_list: Sequence[int],
                    tmp_dir: str) -> List[Callable[[], object]]:
    """One callable per thread count that runs ``model`` once on ``x``;
    ONNX and ncnn files go to ``tmp_dir``."""
    if backend in ('pytorch', 'pytorch-deploy'):
        net = model if backend == 'pytorch' else deployed(model, size)

        def run():
            with torch.no_grad():
                net(x)

        return [run] * len(threads_list)
    files, _ = convert_classifier(name, model, backend, size, tmp_dir)
    runners = [
        classifier_runner(model, backend, files, threads)
        for threads in threads_list
    ]
    feed = x.numpy()
    return [lambda runner=runner: runner(feed) for runner in runners]


def convert_classifier(name: str,
                       model: nn.Module,
                       backend: str,
                       size: Size,
                       tmp_dir: str,
                       method: str = 'percentile',
                       fp32_layers: Sequence[str] = (),
                       normalization: str = 'unit'):
    """The files of ``model`` (baked for ``size`` if it has a deploy mode)
    for ``backend``: 'onnxruntime', 'ncnn' or 'mnn', fp32, with '-int8',
    quantized after calibrating by ``method`` (MNN: :data:`MNN_INT8_METHOD`)
    on :func:`calibration_inputs` (of ``normalization``); 'openvino' (the
    ONNX file), 'executorch' or 'litert', fp32.

    Returns:
        tuple[list[str], dict]: The files, and the quantization's figures
        (empty for fp32).
    """
    prefix = osp.join(tmp_dir, f'{name}_{size_name(size)}')
    if backend in ('executorch', 'litert'):
        export = export_litert if backend == 'litert' else export_executorch
        extension = '.tflite' if backend == 'litert' else '.pte'
        return export(
            deployed(model, size), 'Classification', size,
            prefix + extension), {}
    if backend.startswith(('onnxruntime', 'mnn', 'openvino')):
        path = prefix + '.onnx'
        if not osp.exists(path):  # fp32 and int8 share it
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                torch.onnx.export(
                    ExportGraph(deployed(model, size),
                                'Classification').eval(),
                    torch.zeros(1, 3, *size),
                    path,
                    input_names=['input'],
                    output_names=['output'],
                    opset_version=17,  # MobileViT's attention needs >= 14
                    dynamo=False)
        files = [path]
        if backend.startswith('mnn'):
            files = [prefix + '.mnn']
            if not osp.exists(files[0]):  # mnn and mnn-int8 share it
                convert_onnx_to_mnn(path, files[0])
    else:
        # convert_to_ncnn also puts the peers' attention in the 4-D form
        # ncnn needs.
        files = [prefix + '.param', prefix + '.bin']
        if not osp.exists(files[0]):
            files = convert_to_ncnn(
                deployed(model, size), 'Classification', size, prefix)
    if not backend.endswith('-int8'):
        return files, {}
    inputs = calibration_inputs(size, normalization)
    prefix += f'.{normalization}'
    if backend == 'onnxruntime-int8':
        int8_files = [prefix + '.int8.onnx']
        report = quantize_onnx(files[0], int8_files[0], inputs, method,
                               fp32_layers)
    elif backend == 'mnn-int8':
        int8_files = [prefix + '.int8.mnn']
        report = quantize_mnn(
            files[0], int8_files[0], inputs, MNN_INT8_METHOD, fp32_layers=())
    else:
        int8_files, report = quantize_ncnn_model(*files, prefix + '.int8',
                                                 inputs, method, fp32_layers)
    return int8_files, report


def classifier_runner(model: nn.Module, backend: str, files: Sequence[str],
                      threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function from an input (1, 3, H, W) to the class scores (1, C)
    of the converted classifier ``files`` on ``backend``."""
    if backend.startswith('onnxruntime'):
        import onnxruntime
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(
            files[0], options, providers=['CPUExecutionProvider'])
        return lambda x: session.run(None, {'input': x})[0]
    if backend.startswith('mnn'):
        module = MnnModule(files[0], 'input', ['output'], threads)
        return lambda x: module(x)[0]
    if backend == 'openvino':
        compiled = compile_onnx(files[0], threads)
        return lambda x: compiled(x)[0]
    if backend == 'litert':
        litert = LiteRTModel(files[0], threads)
        return lambda x: litert(x)['output']
    if backend == 'executorch':
        program = ExecuTorchProgram(files[0], threads)
        return lambda x: program(x)[0]
    runner = NcnnRunner(model, 'Classification', *files, num_threads=threads)
    return lambda x: runner(torch.from_numpy(x))['output'].numpy()


# The input normalizations of the comparisons: [0, 1] (EdgeFormer's and
# MobileViT's preprocessing), and ImageNet's mean and std (EdgeNeXt's).
NORMALIZATIONS = {
    'unit': dict(mean=[0.] * 3, std=[255.] * 3),
    'imagenet':
    dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
}


def classifier_steps(size: Size, normalization: str = 'unit') -> List[dict]:
    """EdgeFormer's test preprocessing (short edge to 9/8 of the crop, the
    centre crop, RGB) for the crop ``size``, normalized by one of
    :data:`NORMALIZATIONS`: the same input for every model of the
    comparisons."""
    return [
        dict(type='load', channel_order='bgr'),
        dict(
            type='resize_edge',
            edge='short',
            scale=round(max(size) * 9 / 8),
            interpolation='bilinear',
            backend='cv2'),
        dict(type='center_crop', size=list(size)),
        dict(type='normalize', to_rgb=True, **NORMALIZATIONS[normalization]),
    ]


def calibration_inputs(size: Size,
                       normalization: str = 'unit') -> List[np.ndarray]:
    """The int8 calibration set of the comparisons: scikit-image's
    calibration photos by :func:`classifier_steps`."""
    from .photos import CALIBRATION_PHOTOS, copy_photos
    with tempfile.TemporaryDirectory() as tmp:
        return image_inputs(
            copy_photos(CALIBRATION_PHOTOS, tmp),
            classifier_steps(size, normalization), size)


def peak_memory_mb(model: nn.Module, size: Size) -> float:
    """Peak of the memory PyTorch allocates during one eager inference
    (activations and temporaries; the weights are already there), from the
    profiler's allocation events."""
    from torch.profiler import ProfilerActivity, profile
    x = torch.rand(1, 3, *size)
    with profile(
            activities=[ProfilerActivity.CPU],
            profile_memory=True) as profiler:
        with torch.no_grad():
            model(x)
    # Each op's own allocations (+) and frees (-), in the order they ran.
    events = sorted(
        profiler.events(), key=lambda event: event.time_range.start)
    usage = np.cumsum([event.self_cpu_memory_usage for event in events])
    return float(usage.max(initial=0)) / 2**20


def time_cases(cases: Sequence[Case], rounds: int,
               runs: int) -> Dict[tuple, Dict[str, float]]:
    """Warm every case up, then time them in ``rounds`` interleaved rounds
    of ``runs`` runs each; the figures of each case by its key."""
    for case in cases:
        torch.set_num_threads(case.threads)
        for _ in range(2):
            case.run()
    for _ in range(rounds):
        for case in cases:
            case.time_round(runs)
    return {case.key: case.figures() for case in cases}


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open('/proc/cpuinfo') as f:
            return next(
                line.split(':', 1)[1].strip() for line in f
                if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def describe_machine() -> str:
    """The CPU, its core count and the versions of the runtimes."""
    return (
        f'{cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}, '
        f'onnxruntime {_version("onnxruntime")}, ncnn {_version("ncnn")}')


def _version(package: str) -> str:
    try:
        return __import__(package).__version__
    except (ImportError, AttributeError):
        return 'absent'


def run_benchmark(models: Sequence[str], backends: Sequence[str],
                  sizes: Sequence[str], sweep: Sequence[str],
                  threads: Sequence[int], rounds: int, runs: int) -> dict:
    """Measure ``models`` and time them on ``backends``.

    Args:
        models (Sequence[str]): Names from :data:`BENCHMARK_MODELS`.
        backends (Sequence[str]): Names from :data:`BENCHMARK_BACKENDS`.
        sizes (Sequence[str]): Input sizes of the main table, ``'H'`` or
            ``'HxW'``; the first one is also where memory is measured.
        sweep (Sequence[str]): Input sizes of the resolution sweep, timed on
            :data:`SWEEP_BACKENDS` at 1 thread (empty: no sweep).
        threads (Sequence[int]): Thread counts of the main table.
        rounds (int): Interleaved rounds.
        runs (int): Timed runs per case and round.

    Returns:
        dict: What results.json holds: ``machine``, ``settings``,
        ``models`` (``params``, ``macs`` by size, ``peak_memory_mb``, by
        model, in the order of ``models``), ``latency`` (the figures of
        :meth:`Case.figures` by ``'model|backend|HxW|threads'``) and
        ``conversions`` (:func:`make_cases`' conversion figures by
        ``'model|backend|HxW'``) and ``failures`` (the errors by
        ``'model|backend|HxW'``).
    """
    table_sizes = [parse_size(s) for s in sizes]
    sweep_sizes = [parse_size(s) for s in sweep]
    sweep_backends = [b for b in SWEEP_BACKENDS if b in backends]
    built = {name: get_model(BENCHMARK_MODELS[name]).eval() for name in models}
    info, cases, failures, conversions = {}, [], {}, {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        for name, model in built.items():
            info[name] = dict(
                params=count_parameters(model),
                macs={
                    size_name(size): count_macs(model, torch.rand(1, 3, *size))
                    for size in dict.fromkeys(table_sizes + sweep_sizes)
                },
                peak_memory_mb=peak_memory_mb(model, table_sizes[0]))
            # The sweep skips the sizes the main table already times.
            schedule = [(size, backends, threads) for size in table_sizes] + [
                (size, sweep_backends, [1])
                for size in sweep_sizes if size not in table_sizes
            ]
            for size, size_backends, size_threads in schedule:
                new, failed, converted = make_cases(name, model, size_backends,
                                                    size, size_threads,
                                                    tmp_dir)
                cases += new
                conversions.update({
                    f'{name}|{b}|{size_name(size)}': figures
                    for b, figures in converted.items()
                })
                failures.update({
                    (name, b, size_name(size)): error
                    for b, error in failed.items()
                })
        print(f'timing {len(cases)} cases: {rounds} interleaved rounds '
              f'of {runs} runs each')
        latencies = time_cases(cases, rounds, runs)
    return dict(
        machine=describe_machine(),
        settings=dict(
            rounds=rounds,
            runs=runs,
            threads=list(threads),
            sizes=list(sizes),
            sweep=list(sweep)),
        models=info,
        latency={
            '|'.join(map(str, key)): value
            for key, value in latencies.items()
        },
        conversions=conversions,
        failures={
            '|'.join(key): error
            for key, error in failures.items()
        })
