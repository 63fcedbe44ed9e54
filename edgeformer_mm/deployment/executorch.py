"""ExecuTorch programs (``.pte``) that run on its XNNPACK backend.

The network is exported with ``torch.export`` for a fixed input size and
lowered by ExecuTorch's XNNPACK partitioner: every operator XNNPACK takes
runs in its delegate, the rest in ExecuTorch's portable kernels. The graph
ends where the ncnn one does (:class:`.ncnn.ExportGraph`), except for
detection, which has no ``DetectionOutput`` layer here:

- classification: ``output``, the softmax scores (1, num_classes);
- segmentation: ``output``, the class logits resized to the input
  (1, num_classes, H, W); the argmax is taken on the host;
- detection: ``boxes`` (1, P, 4), decoded in input pixels and clipped as
  mmdet does, and ``scores`` (1, P, num_classes), the foreground scores,
  zero for the degenerate boxes mmdet drops (see
  :func:`.ncnn.detection_output_inputs`); thresholds and NMS run on the
  host.

ExecuTorch is an optional dependency (``pip install
edgeformer_mm[executorch]``), imported only when a model is exported.
"""
import os
import os.path as osp
import tempfile
from typing import List, Tuple

import torch
from torch import nn

from .ncnn import ExportGraph


def _import_executorch():
    """ExecuTorch's lowering API and its constant folding, or an
    ImportError that says how to install ExecuTorch."""
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import \
            XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
        from executorch.exir.passes.constant_prop_pass import \
            constant_prop_pass
    except ImportError as error:
        raise ImportError(
            'exporting to ExecuTorch needs the executorch package: '
            'pip install edgeformer_mm[executorch]') from error
    return to_edge_transform_and_lower, XnnpackPartitioner, constant_prop_pass


def lower_to_xnnpack(model: nn.Module, task: str, input_size: Tuple[int, int]):
    """``model``'s graph for ``task`` (:class:`~.ncnn.ExportGraph`, with
    the NMS on the host), exported
    for ``input_size`` and lowered to ExecuTorch with XNNPACK.

    Args:
        model (nn.Module): The model in eval mode (EdgeFormer already in
            deploy mode for ``input_size``).
        task (str): The mmdeploy task name.
        input_size (tuple[int, int]): (height, width) of the input.

    Returns:
        ExecutorchProgramManager: The program; its ``buffer`` is the
        ``.pte`` file, its ``exported_program()`` the graph with the
        delegate calls.
    """
    (to_edge_transform_and_lower, XnnpackPartitioner,
     constant_prop_pass) = _import_executorch()
    graph = ExportGraph(model, task, host_nms=True).eval()
    example = (torch.zeros(1, 3, *input_size), )
    with torch.no_grad():
        exported = torch.export.export(graph, example)
    # torch.export records what is computed from constants only (the prior
    # boxes of detection) as operators, some of which XNNPACK does not take
    # and which would run at every inference: they are computed here.
    exported = constant_prop_pass(exported)
    return to_edge_transform_and_lower(
        exported, partitioner=[XnnpackPartitioner()]).to_executorch()


def export_executorch(model: nn.Module, task: str, input_size: Tuple[int, int],
                      path: str) -> List[str]:
    """Export ``model`` for a fixed input size to the ExecuTorch program
    ``path`` (``.pte``), for its XNNPACK backend.

    The file appears only once the export succeeded: a failed one leaves
    nothing that could be mistaken for a model.

    Args:
        model (nn.Module): The model in eval mode (EdgeFormer already in
            deploy mode for ``input_size``).
        task (str): The mmdeploy task name.
        input_size (tuple[int, int]): (height, width) of the input.
        path (str): The ``.pte`` file to write.

    Returns:
        list[str]: ``[path]``. The program's outputs are those of an
        ExecuTorch bundle (``edgeformer_runtime.bundle.OUTPUTS``), in that
        order.
    """
    if osp.exists(path):  # never leave an earlier model after a failure
        os.remove(path)
    program = lower_to_xnnpack(model, task, input_size)
    out_dir = osp.dirname(osp.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=out_dir, prefix='.executorch-', suffix='.pte')
    try:
        with os.fdopen(handle, 'wb') as file:
            file.write(program.buffer)
        os.replace(temporary, path)
    except BaseException:
        os.remove(temporary)
        raise
    return [path]
