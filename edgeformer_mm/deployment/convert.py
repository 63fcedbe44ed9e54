"""Conversion for deployment: ONNX through mmdeploy, checks on the inputs."""
import copy
import functools
import os
import os.path as osp
import tempfile
from typing import Optional, Tuple

import torch
from mmengine.config import Config
from torch import nn

from ..utils.state_dict import compare_state_dicts

BACKENDS = ('onnxruntime', 'ncnn', 'mnn', 'litert', 'executorch')
# Backends that convert the ONNX graph mmdeploy exports for ONNX Runtime.
ONNX_BASED_BACKENDS = ('mnn', )
# Backends whose converters start from torch.export (of deploy mode).
TORCH_EXPORT_BACKENDS = ('litert', 'executorch')


def static_input_size(deploy_cfg: Config) -> Optional[Tuple[int, int]]:
    """(H, W) of a static deploy config, None if H or W is dynamic."""
    onnx_cfg = deploy_cfg.onnx_config
    dynamic = onnx_cfg.get('dynamic_axes') or {}
    input_axes = dynamic.get(onnx_cfg.input_names[0], {})
    if onnx_cfg.get('input_shape') is None or {2, 3} & set(input_axes):
        return None
    width, height = onnx_cfg.input_shape  # mmdeploy's order
    return height, width


def mmdeploy_config(deploy_cfg: Config) -> Config:
    """The deploy config for mmdeploy's task processor and ONNX export: for
    the backends mmdeploy does not know (:data:`ONNX_BASED_BACKENDS`, which
    convert its ONNX Runtime graph, and :data:`TORCH_EXPORT_BACKENDS`), the
    same config for ONNX Runtime, in fp32."""
    if deploy_cfg.backend_config.type not in (ONNX_BASED_BACKENDS +
                                              TORCH_EXPORT_BACKENDS):
        return deploy_cfg
    export_cfg = copy.deepcopy(deploy_cfg)
    export_cfg.backend_config = dict(type='onnxruntime')
    return export_cfg


def check_checkpoint(model: nn.Module, checkpoint: str):
    """Raise ValueError unless ``checkpoint``'s state dict has exactly the
    keys and shapes of ``model``'s (mmdeploy would load it non-strictly and
    export a partly random model)."""
    try:
        state_dict = torch.load(checkpoint, map_location='cpu')
    except Exception as error:
        raise ValueError(f'cannot read the checkpoint {checkpoint}: '
                         f'{error}') from error
    state_dict = state_dict.get('state_dict', state_dict)
    mismatch = compare_state_dicts(state_dict, model.state_dict())
    if mismatch:
        raise ValueError(
            f'the checkpoint {checkpoint} does not match the model config: '
            f'{mismatch.report(limit=10)}')


def export_onnx(img: str,
                work_dir: str,
                deploy_cfg: Config,
                model_cfg: Config,
                checkpoint: str,
                device: str = 'cpu') -> str:
    """Export with mmdeploy's ``torch2onnx``; the path of the ONNX file.

    PyTorch's TorchScript exporter is used (torch >= 2.9 defaults to the
    dynamo one, which mmdeploy 1.3.1's rewriters do not support). The file
    appears only once the export succeeded.
    """
    from mmdeploy.apis import torch2onnx

    onnx_file = deploy_cfg.onnx_config.save_file
    path = osp.join(work_dir, onnx_file)
    if osp.exists(path):  # never leave an earlier model beside a failed one
        os.remove(path)
    os.makedirs(work_dir, exist_ok=True)
    export = torch.onnx.export
    torch.onnx.export = functools.partial(export, dynamo=False)
    try:
        with tempfile.TemporaryDirectory(dir=work_dir, prefix='.onnx-') as tmp:
            torch2onnx(img, tmp, onnx_file, deploy_cfg, model_cfg, checkpoint,
                       device)
            os.replace(osp.join(tmp, onnx_file), path)
    finally:
        torch.onnx.export = export
    return path


class OnnxRuntimeBackend:
    """mmdeploy's ONNX Runtime model for ``backend_files``, with the raw
    call that :class:`NcnnRunner` has too (used by :func:`task_parity`).

    Args:
        processor: mmdeploy's task processor.
        backend_files (list[str]): The ONNX file.
        input_name (str): The graph's input name.
        num_threads (int, optional): ONNX Runtime's intra-op thread count
            (default: ONNX Runtime's).
    """

    def __init__(self,
                 processor,
                 backend_files,
                 input_name: str = 'input',
                 num_threads: int = None):
        self.model = processor.build_backend_model(backend_files)
        self.input_name = input_name
        if num_threads:
            import onnxruntime

            # mmdeploy's wrapper takes no session options: replace its
            # session (our graphs need none of its custom ops).
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = num_threads
            wrapper = self.model.wrapper
            wrapper.sess = onnxruntime.InferenceSession(
                backend_files[0], options, providers=['CPUExecutionProvider'])
            wrapper.io_binding = wrapper.sess.io_binding()

    def test_step(self, data: dict) -> list:
        return self.model.test_step(data)

    def __call__(self, inputs: torch.Tensor) -> dict:
        return self.model.wrapper({self.input_name: inputs})
