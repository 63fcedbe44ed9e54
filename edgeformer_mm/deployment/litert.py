"""LiteRT (TensorFlow Lite's successor) models from the ``litert-torch``
converter (``torch.export``, then LiteRT's MLIR converter), and a runner for
them.

An opt-in extra: ``litert-torch`` brings jax and the LiteRT converter (about
0.5 GB), so it lives in its own environment, ``.venv-litert``, made by
``bash tools/setup_litert.sh`` on top of ``.venv``. Nothing here imports it
until a model is converted or run.

The graph is :class:`~.ncnn.ExportGraph`'s, what runs on the host is the
same:

- classification: ``output``, the softmax scores (1, C);
- segmentation: ``output``, the class logits resized to the input
  (1, C, H, W), the argmax is taken on the host;
- detection: ``boxes`` (1, P, 4), the decoded boxes of all P priors in
  input pixels (x1, y1, x2, y2, clipped to the input), and ``scores``
  (1, P, num_classes), mmdet's class scores of each box (zero for the boxes
  mmdet drops as degenerate), both from
  :func:`~.ncnn.detection_output_inputs`; the score threshold, the
  per-class NMS and the rescaling to the original image stay on the host
  (LiteRT's builtin operators have no multi-class NMS).

The input is ``input``, NCHW (1, 3, H, W) as for the other backends:
LiteRT's convolutions are NHWC, the converter adds the transposes inside
the model. The outputs are named in the model's ``serving_default``
signature; run them by name with the interpreter's signature runner
(``edgeformer_runtime.backends.LiteRTModel``), not by the order of
``get_output_details()``.
"""
import os
import os.path as osp
import tempfile
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from .ncnn import INPUT_NAME, ConverterNotFoundError, ExportGraph

SETUP_HINT = ('the LiteRT extra is not installed in this environment: run '
              '`bash tools/setup_litert.sh` and use .venv-litert/bin/python')


class LiteRTNotInstalledError(ConverterNotFoundError):
    """``litert-torch`` is not installed."""


class LiteRTGraph(ExportGraph):
    """:class:`~.ncnn.ExportGraph` with the NMS on the host, named outputs
    (a dict, whose keys ``litert-torch`` keeps as the signature's output
    names) and the input named ``input`` (a keyword argument).

    Args:
        model (nn.Module): The model, in eval mode.
        task (str): 'Classification', 'ObjectDetection' or 'Segmentation'.
    """

    def __init__(self, model: nn.Module, task: str):
        super().__init__(model, task, host_nms=True)

    def forward(self, input: Tensor) -> Dict[str, Tensor]:
        outputs = super().forward(input)
        if self.task == 'ObjectDetection':
            return dict(zip(('boxes', 'scores'), outputs))
        return dict(output=outputs)


def _import_litert_torch():
    try:
        import litert_torch
    except ImportError as error:
        raise LiteRTNotInstalledError(
            f'litert-torch cannot be imported ({error}): {SETUP_HINT}'
        ) from error
    return litert_torch


def export_litert(model: nn.Module, task: str, input_size: Tuple[int, int],
                  path: str) -> List[str]:
    """Convert ``model`` for a fixed input size to the LiteRT model ``path``
    (a ``.tflite`` file) with ``litert-torch``.

    The file appears only once the conversion succeeded (written under a
    temporary name, then renamed): a failed one leaves nothing that could be
    mistaken for a model, and an earlier model at ``path`` is removed first.

    ``litert-torch``'s progress display is off unless
    ``LITERT_TORCH_SHOW_PROGRESS`` is set.

    Args:
        model (nn.Module): The mmpretrain, mmdet or mmseg model in eval mode
            (EdgeFormer already in deploy mode for ``input_size``, see
            ``switch_to_deploy``, so no kernel resizing is exported).
        task (str): The mmdeploy task name.
        input_size (tuple[int, int]): (height, width) of the input.
        path (str): The LiteRT model file to write.

    Raises:
        LiteRTNotInstalledError: ``litert-torch`` is not installed (see
            ``tools/setup_litert.sh``).

    Returns:
        list[str]: ``[path]``; the model's outputs are those of a LiteRT
        bundle (``edgeformer_runtime.bundle.OUTPUTS``).
    """
    os.environ.setdefault('LITERT_TORCH_SHOW_PROGRESS', 'n')
    litert_torch = _import_litert_torch()
    if osp.exists(path):
        os.remove(path)
    out_dir = osp.dirname(osp.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    graph = LiteRTGraph(model, task).eval()
    example = torch.zeros(1, 3, *map(int, input_size))
    with torch.no_grad():
        converted = litert_torch.convert(
            graph, sample_kwargs={INPUT_NAME: example})
    fd, partial = tempfile.mkstemp(
        dir=out_dir, prefix='.litert-', suffix='.tflite')
    os.close(fd)
    try:
        converted.export(partial)
        os.replace(partial, path)
    finally:
        if osp.exists(partial):
            os.remove(partial)
    return [path]
