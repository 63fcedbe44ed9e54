# The tiny classification model's 64x64 input, int8:
# classification_onnxruntime_static-64x64.py, then quantized after
# calibration (see the 256x256 / 320x320 / 512x512 int8 configs).
_base_ = ['./classification_onnxruntime_static-64x64.py', './_base_/int8.py']

backend_config = dict(precision='INT8')
