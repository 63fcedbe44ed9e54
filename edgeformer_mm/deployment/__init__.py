"""Deployment: ONNX Runtime through mmdeploy, ncnn through pnnx, and the
output comparisons that check them (see tools/deploy.py)."""
from .convert import (BACKENDS, OnnxRuntimeBackend, check_checkpoint,
                      export_onnx, static_input_size)
from .ncnn import (ConverterNotFoundError, NcnnGraph, NcnnRunner,
                   convert_to_ncnn, output_names)
from .parity import difference, label_agreement, match_detections, task_parity

__all__ = [
    'BACKENDS', 'ConverterNotFoundError', 'NcnnGraph', 'NcnnRunner',
    'OnnxRuntimeBackend',
    'check_checkpoint', 'convert_to_ncnn', 'difference', 'export_onnx',
    'label_agreement', 'match_detections', 'output_names',
    'static_input_size', 'task_parity'
]
