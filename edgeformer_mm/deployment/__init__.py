"""Deployment: ONNX Runtime through mmdeploy, ncnn through pnnx, MNN from
the ONNX graph, int8 post-training quantization, the bundles that carry
them to a device (run by ``edgeformer_runtime``), and the comparisons with
PyTorch that check them (see tools/deploy.py)."""
from .attention import with_four_dimensional_attention
from .bundle import (dataset_meta, package_versions, postprocess_params,
                     preprocess_steps, write_bundle)
from .convert import (BACKENDS, ONNX_BASED_BACKENDS, TORCH_EXPORT_BACKENDS,
                      OnnxRuntimeBackend, check_checkpoint, export_onnx,
                      mmdeploy_config, static_input_size)
from .emulation import Arm64Emulation, EmulationError, EmulationUnavailable
from .mnn import MnnConversionError, MnnRunner, convert_onnx_to_mnn
from .mnn_int8 import MnnQuantizationError, quantize_mnn
from .ncnn import (ConverterNotFoundError, ExportGraph, NcnnRunner,
                   convert_to_ncnn, detection_level_priors, output_names)
from .parity import (INT8_PREDICTION_TOLERANCES, PREDICTION_TOLERANCES,
                     compare_predictions, compare_quantized_predictions,
                     describe_comparison, describe_quantized_comparison,
                     difference, init_reference_model, label_agreement,
                     match_detections, paired_detections, reference_prediction,
                     task_parity)
from .quantization import (CALIBRATION_METHODS, FP32_LAYER_CHOICES,
                           CalibrationError, calibration_images,
                           dataset_inputs, image_inputs, onnx_int8_share,
                           quantize_ncnn_model, quantize_onnx)
from .sdk import SDK_FILES, dump_sdk_info, sdk_info, write_sdk_info

__all__ = [
    'Arm64Emulation', 'EmulationError', 'EmulationUnavailable', 'BACKENDS',
    'ONNX_BASED_BACKENDS', 'MnnConversionError', 'MnnRunner',
    'MnnQuantizationError', 'quantize_mnn', 'convert_onnx_to_mnn',
    'mmdeploy_config', 'TORCH_EXPORT_BACKENDS', 'CALIBRATION_METHODS',
    'CalibrationError', 'FP32_LAYER_CHOICES', 'INT8_PREDICTION_TOLERANCES',
    'calibration_images', 'compare_quantized_predictions', 'dataset_inputs',
    'describe_quantized_comparison', 'image_inputs', 'onnx_int8_share',
    'paired_detections', 'quantize_ncnn_model', 'quantize_onnx',
    'ConverterNotFoundError', 'ExportGraph', 'detection_level_priors',
    'NcnnRunner', 'OnnxRuntimeBackend', 'PREDICTION_TOLERANCES', 'SDK_FILES',
    'check_checkpoint', 'compare_predictions', 'convert_to_ncnn',
    'dataset_meta', 'describe_comparison', 'difference', 'dump_sdk_info',
    'export_onnx', 'init_reference_model', 'label_agreement',
    'match_detections', 'output_names', 'package_versions',
    'postprocess_params', 'preprocess_steps', 'reference_prediction',
    'sdk_info', 'static_input_size', 'task_parity', 'write_sdk_info',
    'with_four_dimensional_attention', 'write_bundle'
]
