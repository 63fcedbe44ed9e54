"""Convert a model for a deployment backend into a bundle, and check the
bundle against PyTorch.

ONNX Runtime: exports MODEL_CFG + CHECKPOINT to ONNX through mmdeploy's
Python API, with PyTorch's TorchScript exporter (which mmdeploy 1.3.1 needs
on torch >= 2.9). ncnn: converts with the PyPI pnnx converter; detection
graphs end in ncnn's DetectionOutput layer (see
edgeformer_mm/deployment/ncnn.py). MNN: converts that ONNX graph with MNN's
own converter. ExecuTorch (XNNPACK) and LiteRT (extras, see
docs/runtimes.md): torch.export of the model in deploy mode; detection
graphs end in the boxes and scores of all priors, the NMS runs on the host.
--work-dir becomes a bundle: the backend files (end2end.onnx,
end2end.param + end2end.bin, end2end.mnn, end2end.pte or end2end.tflite)
and bundle.json, the
preprocessing, postprocessing and checksums a device needs to run them with
edgeformer_runtime (`edgeformer-run BUNDLE IMAGE`), without PyTorch.

Then runs the bundle (through edgeformer_runtime) and the PyTorch model
(through mmpretrain's, mmdet's or mmseg's inference API) on IMAGE and prints
how far apart their predictions are; the exit code is 1 if that exceeds the
tolerances:
  classification: the same top-5 classes, scores within --score-tolerance;
  detection: every detection paired with one of the same label, boxes
    within --box-tolerance pixels of the image, scores within
    --score-tolerance;
  segmentation: the same class on at least --min-agreement of the pixels.

int8: a deploy config with backend_config.precision='INT8' (the
*-int8_static-* configs) quantizes the model after calibrating it on a
folder of images (--calib-images DIR) or on images of the model config's
data set through its own pipeline (--calib-dataset val --calib-num 200):
ONNX Runtime's static QDQ quantization, or ncnn's own int8 format written
by edgeformer_mm.deployment.ncnn_int8. Weights symmetric int8 per output
channel, activations per tensor; the calibration method and the layers
kept in fp32 come from the config's calib_config, or --calib-method and
--fp32-layers. The check against PyTorch is then the int8 one: the same
top-1 class, --min-agreement of PyTorch's 10 most confident detections
found (same label, IoU >= 0.5) or of the pixels (default 0.9).

With a static deploy config (fixed input_shape), EdgeFormer is first
switched to deploy mode for that size (backbone.deploy_input_size): fixed
GCC kernels with BatchNorm and positional embeddings folded in. With dynamic
height and width it keeps resizing its kernels inside the graph.

Example:
    python tools/deploy.py \\
        configs/mmpretrain/edgeformer/edgeformer-s_8xb128_in1k.py CKPT \\
        configs/mmdeploy/classification_onnxruntime_static-256x256.py \\
        demo.png --work-dir work_dirs/deploy/edgeformer-s_ort
"""
import argparse
import copy
import inspect
import os
import os.path as osp
import shutil
import statistics
import sys
import tempfile
import time

import cv2
import torch
from mmengine.config import Config
from mmengine.registry import MODELS

import edgeformer_mm  # noqa: F401  (registers the modules)
from edgeformer_mm.deployment import (
    BACKENDS, CALIBRATION_METHODS, FP32_LAYER_CHOICES,
    INT8_PREDICTION_TOLERANCES, ONNX_BASED_BACKENDS, PREDICTION_TOLERANCES,
    TORCH_EXPORT_BACKENDS, CalibrationError, ConverterNotFoundError,
    MnnConversionError, MnnQuantizationError, calibration_images,
    check_checkpoint, compare_predictions, compare_quantized_predictions,
    convert_onnx_to_mnn, convert_to_ncnn, dataset_inputs, dataset_meta,
    describe_comparison, describe_quantized_comparison, detection_level_priors,
    export_onnx, image_inputs, init_reference_model, mmdeploy_config,
    preprocess_steps, quantize_mnn, quantize_ncnn_model, quantize_onnx,
    reference_prediction, sdk_info, static_input_size, write_bundle,
    write_sdk_info)
from edgeformer_mm.deployment.executorch import export_executorch
from edgeformer_mm.deployment.litert import export_litert
from edgeformer_mm.deployment.mnn_int8 import mnn_method
from edgeformer_mm.utils.checkpoint import (CheckpointFileError,
                                            check_checkpoint_file)
from edgeformer_runtime import Predictor, preprocess
from edgeformer_runtime.bundle import BACKEND_FILES


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('model_cfg', help='model config')
    parser.add_argument('checkpoint', help='model checkpoint')
    parser.add_argument('deploy_cfg', help='deploy config (configs/mmdeploy)')
    parser.add_argument('img', help='image to export with and check on')
    parser.add_argument(
        '--work-dir', required=True, help='where the backend files go')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--dump-info',
        action='store_true',
        help="also write mmdeploy's SDK files (deploy.json, pipeline.json, "
        'detail.json), so that mmdeploy_runtime loads the bundle')
    calib = parser.add_argument_group(
        'int8 (deploy configs with precision INT8)')
    source = calib.add_mutually_exclusive_group()
    source.add_argument(
        '--calib-images',
        metavar='DIR',
        help='calibrate on the images in DIR (and its subfolders)')
    source.add_argument(
        '--calib-dataset',
        metavar='SPLIT',
        choices=('train', 'val', 'test'),
        help="calibrate on the model config's SPLIT set (train, val or "
        'test), through its test pipeline')
    calib.add_argument(
        '--calib-num',
        type=int,
        help='calibrate on at most this many images (default: the deploy '
        "config's calib_config.num_images)")
    calib.add_argument(
        '--calib-method',
        choices=CALIBRATION_METHODS,
        help='activation ranges by the largest value (minmax), a percentile '
        'or the KL divergence (entropy) (default: the deploy config\'s '
        'calib_config.method)')
    calib.add_argument(
        '--fp32-layers',
        nargs='*',
        choices=FP32_LAYER_CHOICES,
        help='keep the first layer (the stem) and/or the last ones (the '
        "heads' outputs) in fp32 (default: the deploy config's "
        'calib_config.fp32_layers)')
    parser.add_argument(
        '--score-tolerance',
        type=float,
        help='largest accepted class or detection score difference '
        f'(default: {PREDICTION_TOLERANCES["score"]:g}; int8: how close '
        'PyTorch\'s scores of two classes are for int8 to swap them, '
        f'{INT8_PREDICTION_TOLERANCES["score"]:g})')
    parser.add_argument(
        '--box-tolerance',
        type=float,
        default=PREDICTION_TOLERANCES['box'],
        help='largest accepted box coordinate difference in image pixels '
        f'(default: {PREDICTION_TOLERANCES["box"]:g})')
    parser.add_argument(
        '--min-agreement',
        type=float,
        help='smallest accepted share of pixels with the same class '
        f'(default: {PREDICTION_TOLERANCES["agreement"]:g}; int8: '
        f'{INT8_PREDICTION_TOLERANCES["agreement"]:g}, also of the most '
        'confident detections found)')
    parser.add_argument(
        '--latency-runs',
        type=int,
        default=0,
        help='also time PyTorch and the backend on the image: the median of '
        'this many runs (default: 0, no timing)')
    parser.add_argument(
        '--threads',
        type=int,
        default=0,
        help='threads for PyTorch and the backend (default: their own)')
    return parser.parse_args(argv)


def fail(message: str):
    sys.exit(f'error: {message}')


def main(argv=None):
    args = parse_args(argv)
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import get_input_shape, load_config

    deploy_cfg, model_cfg = load_config(args.deploy_cfg, args.model_cfg)
    backend = deploy_cfg.backend_config.type
    if backend not in BACKENDS:
        fail(f'{args.deploy_cfg} is for the {backend} backend; '
             f'tools/deploy.py supports {", ".join(BACKENDS)}')
    size = static_input_size(deploy_cfg)
    if backend in ('ncnn', ) + TORCH_EXPORT_BACKENDS and size is None:
        fail(f'{args.deploy_cfg}: {backend} needs a static input_shape (no '
             'dynamic height or width); see configs/mmdeploy/'
             f'*_{backend}_static-*')
    if cv2.imread(args.img) is None:
        fail(f'cannot read the image {args.img}')
    try:
        check_checkpoint_file(args.checkpoint)
    except CheckpointFileError as error:
        fail(str(error))
    if args.dump_info and backend not in ('onnxruntime', 'ncnn'):
        fail(f"--dump-info: mmdeploy's SDK has no {backend} backend")
    # The processor and the ONNX export of backends mmdeploy does not know
    # are those for ONNX Runtime.
    export_deploy_cfg = mmdeploy_config(deploy_cfg)
    if args.dump_info:
        try:  # refuse before converting what the SDK cannot run
            sdk_files = sdk_info(deploy_cfg, model_cfg, args.checkpoint,
                                 args.device)
        except ValueError as error:
            fail(f'--dump-info: {error}')
    processor = build_task_processor(model_cfg, export_deploy_cfg, args.device)
    # The reference is the model as trained, not switched to deploy mode.
    # mmdeploy loads checkpoints non-strictly: check this one first.
    torch_model = processor.build_pytorch_model(args.checkpoint)
    try:
        check_checkpoint(torch_model, args.checkpoint)
    except ValueError as error:
        fail(str(error))
    inputs, _ = processor.create_input(args.img,
                                       get_input_shape(export_deploy_cfg))
    x = torch_model.data_preprocessor(copy.deepcopy(inputs), False)['inputs']
    if size is not None and tuple(x.shape[2:]) != size:
        # A model baked for one size gives wrong results at another.
        fail(f'the test pipeline of {args.model_cfg} makes '
             f'{x.shape[2]}x{x.shape[3]} inputs, but {args.deploy_cfg} is '
             f'static {size[0]}x{size[1]}: use a deploy config of the '
             "pipeline's size")
    if args.threads:
        torch.set_num_threads(args.threads)

    task = deploy_cfg.codebase_config.task
    export_cfg = model_cfg.copy()
    if size is not None and 'deploy_input_size' in _backbone_args(model_cfg):
        export_cfg.model.backbone.deploy_input_size = size
    precision = deploy_cfg.backend_config.get('precision', 'FP32').lower()
    if precision != 'fp32' and backend in TORCH_EXPORT_BACKENDS:
        fail(f'{args.deploy_cfg}: {backend} bundles are fp32 only')
    if precision == 'int8':
        try:
            calibration = calibration_set(args, deploy_cfg, model_cfg, size)
        except CalibrationError as error:
            fail(str(error))
    elif args.calib_images or args.calib_dataset:
        fail(f'{args.deploy_cfg} is not an int8 config: --calib-images and '
             '--calib-dataset need one (configs/mmdeploy/*-int8_*)')
    # An int8 model is quantized from the fp32 one, converted aside.
    os.makedirs(args.work_dir, exist_ok=True)
    convert_dir = (
        tempfile.mkdtemp(dir=args.work_dir, prefix='.fp32-')
        if precision == 'int8' else args.work_dir)
    try:
        if backend in ('onnxruntime', ) + ONNX_BASED_BACKENDS:
            backend_files = [
                export_onnx(args.img, convert_dir, export_deploy_cfg,
                            export_cfg, args.checkpoint, args.device)
            ]
            if backend == 'mnn':
                backend_files = [to_mnn(backend_files[0])]
        else:
            deployed = copy.deepcopy(torch_model)
            if hasattr(deployed.backbone, 'switch_to_deploy'):
                deployed.backbone.switch_to_deploy(size)
        if backend in TORCH_EXPORT_BACKENDS:
            export = (
                export_litert if backend == 'litert' else export_executorch)
            file_name = BACKEND_FILES[backend]['model']
            backend_files = export(deployed, task, size,
                                   osp.join(convert_dir, file_name))
        elif backend == 'ncnn':
            backend_files = convert_to_ncnn(
                deployed,
                task,
                size,
                osp.join(convert_dir, 'end2end'),
                fp16=precision == 'fp16')
        if precision == 'int8':
            backend_files, quantization = quantize(backend, backend_files,
                                                   args.work_dir, calibration)
    except (ConverterNotFoundError, MnnConversionError,
            MnnQuantizationError) as error:
        fail(str(error))
    finally:
        if convert_dir != args.work_dir:
            shutil.rmtree(convert_dir)
    print(f'wrote {", ".join(backend_files)}'
          f' ({"static " + "x".join(map(str, size)) if size else "dynamic"}'
          f' input, {precision})')
    if precision == 'int8':
        print(f'int8: {quantization["int8_layers"]} of '
              f'{quantization["layers"]} layers with '
              f'{100 * quantization["int8_macs"] / quantization["macs"]:.1f}% '
              'of the MACs; kept in fp32: '
              f'{", ".join(quantization["fp32_layers"]) or "none"}')

    if args.dump_info:
        backend_files += write_sdk_info(sdk_files, args.work_dir)
    bundle = write_bundle(
        args.work_dir,
        task,
        backend,
        backend_files,
        size,
        model_cfg,
        dataset_meta(model_cfg, args.checkpoint),
        model_name=osp.splitext(osp.basename(args.model_cfg))[0],
        precision=precision,
        quantization=quantization if precision == 'int8' else None,
        level_priors=(detection_level_priors(torch_model, size)
                      if backend in TORCH_EXPORT_BACKENDS
                      and task == 'ObjectDetection' else None))
    print(f'wrote the bundle {args.work_dir} ({bundle.task}, {backend}): '
          f'edgeformer-run {args.work_dir} IMAGE')

    # The bundle from the image file against PyTorch's inference API: the
    # preprocessing and postprocessing are checked too, not only the graph.
    predictor = Predictor(bundle, num_threads=args.threads or None)
    reference = init_reference_model(bundle.task, model_cfg, args.checkpoint,
                                     args.device)
    expected = reference_prediction(bundle.task, reference, args.img)
    given = {
        key: value
        for key, value in [(
            'score', args.score_tolerance), ('agreement', args.min_agreement)]
        if value is not None
    }
    if precision == 'int8':
        figures = compare_quantized_predictions(expected, predictor(
            args.img), {
                **INT8_PREDICTION_TOLERANCES,
                **given
            })
        description = describe_quantized_comparison(bundle.task, figures)
    else:
        figures = compare_predictions(expected, predictor(args.img), {
            **PREDICTION_TOLERANCES, 'box': args.box_tolerance,
            **given
        })
        description = describe_comparison(bundle.task, figures)
    label = backend if precision == 'fp32' else f'{backend} {precision}'
    print(f'{label} vs PyTorch on {args.img}: {description}')
    if args.latency_runs:
        network_input = preprocess(args.img, bundle.preprocess).input
        timings = {
            'PyTorch': lambda: torch_model(x, mode='tensor'),
            label: lambda: predictor.backend(network_input)
        }
        print(f'latency at {"x".join(map(str, x.shape[2:]))}, median of '
              f'{args.latency_runs} runs: ' +
              ', '.join(f'{name} {median_ms(run, args.latency_runs):.1f} ms'
                        for name, run in timings.items()))
    if not figures['passed']:
        sys.exit(1)


def to_mnn(onnx_file: str) -> str:
    """Convert the exported ONNX file to ``end2end.mnn`` beside it, which
    replaces it."""
    try:
        return convert_onnx_to_mnn(
            onnx_file, osp.join(osp.dirname(onnx_file), 'end2end.mnn'))
    finally:
        os.remove(onnx_file)


def calibration_set(args, deploy_cfg: Config, model_cfg: Config, size) -> dict:
    """The calibration inputs and settings of an int8 conversion, from the
    command line or the deploy config's ``calib_config``."""
    if size is None:
        raise CalibrationError(
            f'{args.deploy_cfg}: int8 needs a static input_shape (the '
            'GCC kernels baked for one size)')
    settings = deploy_cfg.get('calib_config', {})
    num = args.calib_num or settings.get('num_images')
    if args.calib_images:
        images = calibration_images(args.calib_images, num)
        inputs = image_inputs(images, preprocess_steps(model_cfg), size)
        source = f'{len(inputs)} images from {args.calib_images}'
    elif args.calib_dataset:
        inputs = dataset_inputs(model_cfg, args.calib_dataset, num or 200,
                                size)
        source = (f'{len(inputs)} images of the model config\'s '
                  f'{args.calib_dataset} set')
    else:
        raise CalibrationError(
            f'{args.deploy_cfg} is an int8 config: give the calibration '
            'images, --calib-images DIR or --calib-dataset SPLIT')
    method = args.calib_method or settings.get('method', 'percentile')
    if deploy_cfg.backend_config.type == 'mnn':
        try:  # MNN's quantizer has its own methods
            mnn_method(method)
        except ValueError as error:
            raise CalibrationError(str(error))
    fp32_layers = (
        args.fp32_layers if args.fp32_layers is not None else settings.get(
            'fp32_layers', []))
    print(f'calibrating on {source} ({method})')
    return dict(
        inputs=inputs,
        source=source,
        method=method,
        fp32_layers=list(fp32_layers))


def quantize(backend: str, fp32_files: list, work_dir: str, calibration: dict):
    """Quantize the fp32 backend files into ``work_dir``'s end2end files;
    their paths and the quantization's description for the bundle."""
    if backend == 'onnxruntime':
        files = [osp.join(work_dir, osp.basename(fp32_files[0]))]
        report = quantize_onnx(fp32_files[0], files[0], calibration['inputs'],
                               calibration['method'],
                               calibration['fp32_layers'])
    elif backend == 'mnn':
        files = [osp.join(work_dir, osp.basename(fp32_files[0]))]
        report = quantize_mnn(
            fp32_files[0],
            files[0],
            calibration['inputs'],
            calibration['method'],
            fp32_layers=calibration['fp32_layers'])
        report = dict(
            {
                key: report[key]
                for key in ('int8_layers', 'layers', 'int8_macs', 'macs')
            },
            fp32_layers=report['skipped'],
            mnn_method=report['method_used'])
    else:
        files, report = quantize_ncnn_model(
            *fp32_files,
            osp.join(work_dir, 'end2end'),
            calibration['inputs'],
            calibration['method'],
            fp32_layers=calibration['fp32_layers'])
    return files, dict(
        report,
        method=calibration['method'],
        calibration=calibration['source'],
        fp32_layer_choice=calibration['fp32_layers'])


def median_ms(run, runs: int) -> float:
    """Median wall time of ``run()`` in milliseconds, after two warm-ups."""
    times = []
    with torch.no_grad():
        for i in range(runs + 2):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[2:])


def _backbone_args(model_cfg: Config):
    """The keyword arguments the config's backbone class accepts."""
    backbone = model_cfg.model.get('backbone', {})
    cls = MODELS.get(backbone.get('type', ''))
    return inspect.signature(cls).parameters if cls else {}


if __name__ == '__main__':
    main()
