"""Deployment: ONNX Runtime through mmdeploy, ncnn through pnnx, and the
output comparisons that check them (see tools/deploy.py)."""
from .attention import with_four_dimensional_attention
from .convert import (BACKENDS, OnnxRuntimeBackend, check_checkpoint,
                      export_onnx, static_input_size)
from .ncnn import (ConverterNotFoundError, ExportGraph, NcnnRunner,
                   convert_to_ncnn, output_names)
from .parity import difference, label_agreement, match_detections, task_parity

__all__ = [
    'BACKENDS', 'ConverterNotFoundError', 'ExportGraph', 'NcnnRunner',
    'OnnxRuntimeBackend',
    'check_checkpoint', 'convert_to_ncnn', 'difference', 'export_onnx',
    'label_agreement', 'match_detections', 'output_names',
    'static_input_size', 'task_parity', 'with_four_dimensional_attention'
]
