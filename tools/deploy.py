"""Convert a model for a deployment backend and check it against PyTorch.

ONNX Runtime: exports MODEL_CFG + CHECKPOINT to ONNX through mmdeploy's
Python API, with PyTorch's TorchScript exporter (which mmdeploy 1.3.1 needs
on torch >= 2.9). ncnn: converts with the PyPI pnnx converter (see
edgeformer_mm/deployment/ncnn.py for what stays on the host). The files go
to --work-dir (end2end.onnx, or end2end.param + end2end.bin).

Then runs the backend and the PyTorch model on IMAGE and prints how far
apart they are; the exit code is 1 if that exceeds the tolerances:
  classification: the class scores, relative to the largest;
  detection: every detection paired with one of the same label, boxes
    within --box-tolerance pixels (at the network input), scores within
    --score-tolerance;
  segmentation: the logits at input size, relative to the largest, and
    the share of pixels with the same class (--min-agreement).

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
from edgeformer_mm.deployment import (BACKENDS, ConverterNotFoundError,
                                      NcnnRunner, OnnxRuntimeBackend,
                                      check_checkpoint, convert_to_ncnn,
                                      export_onnx, static_input_size,
                                      task_parity)


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
        '--tolerance',
        type=float,
        default=1e-4,
        help='largest accepted score or logit difference relative to the '
        'largest PyTorch output (default: 1e-4)')
    parser.add_argument(
        '--box-tolerance',
        type=float,
        default=1e-3,
        help='largest accepted box coordinate difference in pixels '
        '(default: 1e-3)')
    parser.add_argument(
        '--score-tolerance',
        type=float,
        default=1e-4,
        help='largest accepted detection score difference (default: 1e-4)')
    parser.add_argument(
        '--min-agreement',
        type=float,
        default=0.999,
        help='smallest accepted share of pixels with the same class '
        '(default: 0.999)')
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
    processor = build_task_processor(model_cfg, deploy_cfg, args.device)
    # The reference is the model as trained, not switched to deploy mode.
    # mmdeploy loads checkpoints non-strictly: check this one first.
    torch_model = processor.build_pytorch_model(args.checkpoint)
    try:
        check_checkpoint(torch_model, args.checkpoint)
    except ValueError as error:
        fail(str(error))
    inputs, _ = processor.create_input(args.img,
                                       get_input_shape(deploy_cfg))
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

    if backend == 'onnxruntime':
        backend_model = OnnxRuntimeBackend(
            processor,
            backend_files,
            deploy_cfg.onnx_config.input_names[0],
            num_threads=args.threads)
    else:
        backend_model = NcnnRunner(
            torch_model,
            task,
            *backend_files,
            num_threads=args.threads,
            fp16=fp16)
    parity = task_parity(task, torch_model, backend_model, inputs)
    passed = report(task, f'{backend} vs PyTorch on {args.img}', parity,
                    args)
    if args.latency_runs:
        timings = {
            'PyTorch': lambda: torch_model(x, mode='tensor'),
            backend: lambda: backend_model(x)
        }
        print(f'latency at {"x".join(map(str, x.shape[2:]))}, median of '
              f'{args.latency_runs} runs: ' + ', '.join(
                  f'{name} {median_ms(run, args.latency_runs):.1f} ms'
                  for name, run in timings.items()))
    if not passed:
        sys.exit(1)


def report(task: str, where: str, parity: dict, args) -> bool:
    """Print the figures of :func:`task_parity`; whether they are within
    the tolerances."""
    if task == 'ObjectDetection':
        print(f'{where}: {parity["expected"]} detections, '
              f'{parity["actual"]} from the backend, {parity["unmatched"]} '
              f'unmatched; largest box difference {parity["box"]:.3g} px at '
              f'the input, score difference {parity["score"]:.3g} '
              f'(tolerances {args.box_tolerance:g}, '
              f'{args.score_tolerance:g})')
        return (parity['unmatched'] == 0
                and parity['box'] <= args.box_tolerance
                and parity['score'] <= args.score_tolerance)
    line = (f'{where}: largest absolute difference {parity["abs"]:.3g}, '
            f'relative {parity["rel"]:.3g} (tolerance {args.tolerance:g})')
    if task == 'Classification':
        print(line)
        return parity['rel'] <= args.tolerance
    print(f'{line}; same class on {100 * parity["agreement"]:.3f}% of the '
          'pixels')
    return (parity['rel'] <= args.tolerance
            and parity['agreement'] >= args.min_agreement)


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
