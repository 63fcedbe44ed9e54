"""OpenVINO reads the ONNX graphs of the ONNX Runtime bundles
(``end2end.onnx``) directly, mmdeploy's NMS included: no separate export.

Two settings matter for exact results: OpenVINO computes in bf16 on CPUs
that have it (AVX-512 BF16, AMX) unless asked for fp32, and
``openvino.save_model`` stores fp16 weights unless given
``compress_to_fp16=False``.
"""
import sys
from typing import Optional

# In fp32: bf16 moved class scores by 2e-3 and reordered detections.
FP32_CONFIG = {'INFERENCE_PRECISION_HINT': 'f32'}


def import_openvino():
    """``openvino``, imported without its telemetry: with the
    openvino-telemetry package installed and no opt-out, ``import openvino``
    starts a process that sends a usage event; without the package OpenVINO
    uses a stub that sends nothing."""
    sys.modules.setdefault('openvino_telemetry', None)
    try:
        import openvino
    except ImportError as error:
        raise ImportError('OpenVINO is not installed: pip install --no-deps '
                          'openvino (see docs/deployment.md)') from error
    return openvino


def compile_onnx(path: str, num_threads: Optional[int] = None):
    """An ONNX file compiled by OpenVINO for the CPU, in fp32; called with
    a (N, 3, H, W) array, it returns the outputs (``result[name]`` or by
    index)."""
    openvino = import_openvino()
    config = dict(FP32_CONFIG)
    if num_threads:
        config['INFERENCE_NUM_THREADS'] = num_threads
    core = openvino.Core()
    return core.compile_model(core.read_model(path), 'CPU', config)
