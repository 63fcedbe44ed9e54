# SSDLite detection, ONNX Runtime, int8 by its static QDQ quantization (the
# GCC's circulant products included), fixed 320x320 input:
# detection_onnxruntime_static-320x320.py, then quantized after calibration
# (tools/deploy.py --calib-images DIR or --calib-dataset SPLIT).
_base_ = ['./detection_onnxruntime_static-320x320.py', './_base_/int8.py']

backend_config = dict(precision='INT8')
