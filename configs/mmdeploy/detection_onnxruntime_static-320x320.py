# SSDLite detection, ONNX Runtime, fixed 320x320 input; EdgeFormer is
# switched to deploy mode for that size (see the classification config).
_base_ = ['./_base_/detection.py']

onnx_config = dict(input_shape=[320, 320])  # [width, height]
backend_config = dict(type='onnxruntime')
