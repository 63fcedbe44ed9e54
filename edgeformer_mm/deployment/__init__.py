"""Deployment: ONNX Runtime through mmdeploy, ncnn through pnnx, the bundles
that carry them to a device (run by ``edgeformer_runtime``), and the
comparisons with PyTorch that check them (see tools/deploy.py)."""
from .attention import with_four_dimensional_attention
from .bundle import (dataset_meta, package_versions, postprocess_params,
                     preprocess_steps, write_bundle)
from .convert import (BACKENDS, OnnxRuntimeBackend, check_checkpoint,
                      export_onnx, static_input_size)
from .emulation import Arm64Emulation, EmulationError, EmulationUnavailable
from .ncnn import (ConverterNotFoundError, ExportGraph, NcnnRunner,
                   convert_to_ncnn, output_names)
from .parity import (PREDICTION_TOLERANCES, compare_predictions,
                     describe_comparison, difference, init_reference_model,
                     label_agreement, match_detections, reference_prediction,
                     task_parity)
from .sdk import SDK_FILES, dump_sdk_info, sdk_info, write_sdk_info

__all__ = [
    'Arm64Emulation', 'EmulationError', 'EmulationUnavailable', 'BACKENDS',
    'ConverterNotFoundError', 'ExportGraph', 'NcnnRunner',
    'OnnxRuntimeBackend', 'PREDICTION_TOLERANCES', 'SDK_FILES',
    'check_checkpoint', 'compare_predictions', 'convert_to_ncnn',
    'dataset_meta', 'describe_comparison', 'difference', 'dump_sdk_info',
    'export_onnx', 'init_reference_model', 'label_agreement',
    'match_detections', 'output_names', 'package_versions',
    'postprocess_params', 'preprocess_steps', 'reference_prediction',
    'sdk_info', 'static_input_size', 'task_parity', 'write_sdk_info',
    'with_four_dimensional_attention', 'write_bundle'
]
