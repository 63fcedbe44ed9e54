"""Convert a model for a deployment backend with mmdeploy and check it.

Exports MODEL_CFG + CHECKPOINT to ONNX through mmdeploy's Python API (with
PyTorch's TorchScript exporter, which mmdeploy 1.3.1 needs on torch >= 2.9),
writes the backend files to --work-dir, then runs the backend and the
PyTorch model on IMAGE and prints the largest absolute and relative output
differences; the exit code is 1 if the relative one exceeds --tolerance.

With a static deploy config (fixed input_shape), EdgeFormer is first
switched to deploy mode for that size (backbone.deploy_input_size): fixed
GCC kernels with BatchNorm and positional embeddings folded in. With dynamic
height and width it keeps resizing its kernels inside the graph.

Example:
    python tools/deploy.py \\
        configs/mmpretrain/edgeformer/edgeformer-s_8xb128_in1k.py CKPT \\
        configs/mmdeploy/classification_onnxruntime_static-256x256.py \\
        demo.png --work-dir work_dirs/deploy/edgeformer-s_ort

Supported here: classification with ONNX Runtime (configs/mmdeploy).
"""
import argparse
import copy
import functools
import inspect
import os.path as osp
import sys

import torch
from mmengine.config import Config
from mmengine.registry import MODELS

import edgeformer_mm  # noqa: F401  (registers the modules)


def static_input_size(deploy_cfg: Config):
    """(H, W) of a static deploy config, None if H or W is dynamic."""
    onnx_cfg = deploy_cfg.onnx_config
    dynamic = onnx_cfg.get('dynamic_axes') or {}
    input_axes = dynamic.get(onnx_cfg.input_names[0], {})
    if onnx_cfg.get('input_shape') is None or {2, 3} & set(input_axes):
        return None
    width, height = onnx_cfg.input_shape  # mmdeploy's order
    return height, width


def output_tensor(task: str, sample):
    """The tensor of a data sample that the check compares."""
    if task == 'Classification':
        return sample.pred_score
    raise SystemExit(f'error: tools/deploy.py does not compare {task} '
                     'outputs yet')


def main():
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
        help='largest accepted difference relative to the largest PyTorch '
        'output (default: 1e-4)')
    args = parser.parse_args()

    from mmdeploy.apis import torch2onnx
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import get_input_shape, load_config

    deploy_cfg, model_cfg = load_config(args.deploy_cfg, args.model_cfg)
    size = static_input_size(deploy_cfg)
    export_cfg = model_cfg.copy()
    if size is not None and 'deploy_input_size' in _backbone_args(model_cfg):
        export_cfg.model.backbone.deploy_input_size = size

    # mmdeploy calls torch.onnx.export without dynamo=, which torch >= 2.9
    # takes as the new exporter that mmdeploy's rewriters do not support.
    torch.onnx.export = functools.partial(torch.onnx.export, dynamo=False)
    onnx_file = deploy_cfg.onnx_config.save_file
    torch2onnx(args.img, args.work_dir, onnx_file, deploy_cfg, export_cfg,
               args.checkpoint, args.device)
    backend = deploy_cfg.backend_config.type
    if backend != 'onnxruntime':
        sys.exit(f'error: tools/deploy.py supports the onnxruntime backend '
                 f'so far, not {backend}')
    backend_files = [osp.join(args.work_dir, onnx_file)]
    print(f'wrote {backend_files[0]}'
          f' ({"static " + "x".join(map(str, size)) if size else "dynamic"}'
          ' input)')

    processor = build_task_processor(model_cfg, deploy_cfg, args.device)
    # The reference is the model as trained, not switched to deploy mode.
    torch_model = processor.build_pytorch_model(args.checkpoint)
    backend_model = processor.build_backend_model(backend_files)
    inputs, _ = processor.create_input(args.img,
                                       get_input_shape(deploy_cfg))
    with torch.no_grad():
        # Models write their predictions into the data samples: one copy
        # each.
        expected = torch_model.test_step(copy.deepcopy(inputs))[0]
        actual = backend_model.test_step(copy.deepcopy(inputs))[0]
    task = deploy_cfg.codebase_config.task
    expected = output_tensor(task, expected).float().cpu()
    actual = output_tensor(task, actual).float().cpu()
    abs_diff = (actual - expected).abs().max().item()
    rel_diff = abs_diff / expected.abs().max().item()
    print(f'{backend} vs PyTorch on {args.img}: largest absolute difference '
          f'{abs_diff:.3g}, relative {rel_diff:.3g} (tolerance '
          f'{args.tolerance:g})')
    if rel_diff > args.tolerance:
        sys.exit(1)


def _backbone_args(model_cfg: Config):
    """The keyword arguments the config's backbone class accepts."""
    backbone = model_cfg.model.get('backbone', {})
    cls = MODELS.get(backbone.get('type', ''))
    return inspect.signature(cls).parameters if cls else {}


if __name__ == '__main__':
    main()
