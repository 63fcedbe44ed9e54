"""MNN models from the ONNX graphs that mmdeploy exports for ONNX Runtime.

MNN (Alibaba's inference engine, the runtime of the EdgeFormer paper's ARM
measurements) converts ONNX itself, including mmdeploy's detection graph
with its ``NonMaxSuppression``: an MNN model has the inputs and outputs of
the ONNX one (``input`` -> ``output``, or ``dets`` and ``labels``).

The converter is the compiled module ``_tools`` of the PyPI ``mnn``
package, called directly: ``MNN.tools``, its Python wrapper, runs
``pip install`` and sends usage logs when imported, so nothing here (nor
in ``edgeformer_runtime``) imports it.
"""
import os
import os.path as osp
from typing import Dict, List, Optional

import torch
from torch import nn

from edgeformer_runtime.backends import MnnModule, captured_output
from .ncnn import ConverterNotFoundError


class MnnConversionError(RuntimeError):
    """MNN's converter failed; the message holds its output."""


def convert_onnx_to_mnn(onnx_file: str, mnn_file: str) -> str:
    """Convert an ONNX model to MNN (fp32 weights); the path of the MNN file,
    written only once the conversion succeeded.

    Raises:
        ConverterNotFoundError: The ``mnn`` package is not installed.
        MnnConversionError: The conversion failed; the message holds the
            converter's output.
    """
    partial = mnn_file + '.partial'
    with captured_output() as output:  # it prints as it imports and works
        try:
            import _tools  # MNN's compiled converter (see the docstring)
        except ImportError as error:
            raise ConverterNotFoundError(
                'MNN is not installed: pip install "edgeformer_mm[deploy]" '
                '(the mnn package)') from error
        converted = _tools.mnnconvert([
            'mnnconvert', '-f', 'ONNX', '--modelFile', onnx_file, '--MNNModel',
            partial, '--bizCode', 'edgeformer_mm'
        ])
    if not converted or not osp.isfile(partial):
        if osp.exists(partial):
            os.remove(partial)
        raise MnnConversionError(f'MNN cannot convert {onnx_file}:\n'
                                 f'{output["text"].strip()}')
    os.replace(partial, mnn_file)
    return mnn_file


class MnnRunner:
    """An MNN model as mmdeploy's backend models run it, for
    :func:`~edgeformer_mm.deployment.parity.task_parity`: mmdeploy's ONNX
    Runtime model of the task (its postprocessing of the graph's outputs)
    with MNN computing the graph.

    Args:
        processor: mmdeploy's task processor (of an ONNX Runtime deploy
            config, see :func:`~.convert.mmdeploy_config`).
        onnx_file (str): The ONNX file the MNN model was converted from.
        mnn_file (str): The MNN model.
        input_name (str): The graph's input name.
        num_threads (int, optional): MNN's thread count (default: 1).
    """

    def __init__(self,
                 processor,
                 onnx_file: str,
                 mnn_file: str,
                 input_name: str = 'input',
                 num_threads: Optional[int] = None):
        self.model = processor.build_backend_model([onnx_file])
        self.model.wrapper = _MnnWrapper(mnn_file, input_name,
                                         self.model.wrapper.output_names,
                                         num_threads)
        self.input_name = input_name

    def test_step(self, data: dict) -> list:
        return self.model.test_step(data)

    def __call__(self, inputs: torch.Tensor) -> dict:
        return self.model.wrapper({self.input_name: inputs})


class _MnnWrapper(nn.Module):
    """The interface of mmdeploy's backend wrappers over
    :class:`MnnModule`."""

    def __init__(self, mnn_file: str, input_name: str, output_names: List[str],
                 num_threads: Optional[int]):
        super().__init__()
        self.input_name = input_name
        self.output_names = output_names
        self.module = MnnModule(
            mnn_file, input_name, output_names, num_threads, dynamic=True)

    def forward(self, inputs: Dict[str, torch.Tensor]) -> dict:
        outputs = self.module(inputs[self.input_name].cpu().numpy())
        return {
            name: torch.from_numpy(value)
            for name, value in zip(self.output_names, outputs)
        }

    def output_to_list(self, outputs: dict) -> List[torch.Tensor]:
        return [outputs[name] for name in self.output_names]
