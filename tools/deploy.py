"""Convert a model for a deployment backend into a bundle, and check the
bundle against PyTorch.

ONNX Runtime: exports MODEL_CFG + CHECKPOINT to ONNX through mmdeploy's
Python API, with PyTorch's TorchScript exporter (which mmdeploy 1.3.1 needs
on torch >= 2.9). ncnn: converts with the PyPI pnnx converter; detection
graphs end in ncnn's DetectionOutput layer (see
edgeformer_mm/deployment/ncnn.py). --work-dir becomes a bundle: the backend
files (end2end.onnx, or end2end.param + end2end.bin) and bundle.json, the
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
import os.path as osp
import statistics
import sys
import time

import cv2
import torch
from mmengine.config import Config
from mmengine.registry import MODELS

import edgeformer_mm  # noqa: F401  (registers the modules)
from edgeformer_mm.deployment import (BACKENDS, PREDICTION_TOLERANCES,
                                      ConverterNotFoundError, check_checkpoint,
                                      compare_predictions, convert_to_ncnn,
                                      dataset_meta, describe_comparison,
                                      export_onnx, init_reference_model,
                                      reference_prediction, sdk_info,
                                      static_input_size, write_bundle,
                                      write_sdk_info)
from edgeformer_runtime import Predictor, preprocess


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
    parser.add_argument(
        '--score-tolerance',
        type=float,
        default=PREDICTION_TOLERANCES['score'],
        help='largest accepted class or detection score difference '
        f'(default: {PREDICTION_TOLERANCES["score"]:g})')
    parser.add_argument(
        '--box-tolerance',
        type=float,
        default=PREDICTION_TOLERANCES['box'],
        help='largest accepted box coordinate difference in image pixels '
        f'(default: {PREDICTION_TOLERANCES["box"]:g})')
    parser.add_argument(
        '--min-agreement',
        type=float,
        default=PREDICTION_TOLERANCES['agreement'],
        help='smallest accepted share of pixels with the same class '
        f'(default: {PREDICTION_TOLERANCES["agreement"]:g})')
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
             f'tools/deploy.py supports {" and ".join(BACKENDS)}')
    size = static_input_size(deploy_cfg)
    if backend == 'ncnn' and size is None:
        fail(f'{args.deploy_cfg}: ncnn needs a static input_shape (no '
             'dynamic height or width); see configs/mmdeploy/*_ncnn_static-*')
    if cv2.imread(args.img) is None:
        fail(f'cannot read the image {args.img}')
    if args.dump_info:
        try:  # refuse before converting what the SDK cannot run
            sdk_files = sdk_info(deploy_cfg, model_cfg, args.checkpoint,
                                 args.device)
        except ValueError as error:
            fail(f'--dump-info: {error}')
    processor = build_task_processor(model_cfg, deploy_cfg, args.device)
    # The reference is the model as trained, not switched to deploy mode.
    # mmdeploy loads checkpoints non-strictly: check this one first.
    torch_model = processor.build_pytorch_model(args.checkpoint)
    try:
        check_checkpoint(torch_model, args.checkpoint)
    except ValueError as error:
        fail(str(error))
    inputs, _ = processor.create_input(args.img, get_input_shape(deploy_cfg))
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
    fp16 = deploy_cfg.backend_config.get('precision') == 'FP16'
    try:
        if backend == 'onnxruntime':
            backend_files = [
                export_onnx(args.img, args.work_dir, deploy_cfg, export_cfg,
                            args.checkpoint, args.device)
            ]
        else:
            deployed = copy.deepcopy(torch_model)
            if hasattr(deployed.backbone, 'switch_to_deploy'):
                deployed.backbone.switch_to_deploy(size)
            backend_files = convert_to_ncnn(
                deployed,
                task,
                size,
                osp.join(args.work_dir, 'end2end'),
                fp16=fp16)
    except ConverterNotFoundError as error:
        fail(str(error))
    print(f'wrote {", ".join(backend_files)}'
          f' ({"static " + "x".join(map(str, size)) if size else "dynamic"}'
          ' input)')

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
        precision='fp16' if fp16 else 'fp32')
    print(f'wrote the bundle {args.work_dir} ({bundle.task}, {backend}): '
          f'edgeformer-run {args.work_dir} IMAGE')

    # The bundle from the image file against PyTorch's inference API: the
    # preprocessing and postprocessing are checked too, not only the graph.
    predictor = Predictor(bundle, num_threads=args.threads or None)
    reference = init_reference_model(bundle.task, model_cfg, args.checkpoint,
                                     args.device)
    figures = compare_predictions(
        reference_prediction(bundle.task, reference, args.img),
        predictor(args.img),
        dict(
            score=args.score_tolerance,
            box=args.box_tolerance,
            agreement=args.min_agreement))
    print(f'{backend} vs PyTorch on {args.img}: '
          f'{describe_comparison(bundle.task, figures)}')
    if args.latency_runs:
        network_input = preprocess(args.img, bundle.preprocess).input
        timings = {
            'PyTorch': lambda: torch_model(x, mode='tensor'),
            backend: lambda: predictor.backend(network_input)
        }
        print(f'latency at {"x".join(map(str, x.shape[2:]))}, median of '
              f'{args.latency_runs} runs: ' +
              ', '.join(f'{name} {median_ms(run, args.latency_runs):.1f} ms'
                        for name, run in timings.items()))
    if not figures['passed']:
        sys.exit(1)


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
