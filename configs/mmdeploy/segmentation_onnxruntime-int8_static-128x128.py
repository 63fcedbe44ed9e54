# The tiny segmentation model's 128x128 input, int8:
# segmentation_onnxruntime_static-128x128.py, then quantized after
# calibration (see the 256x256 / 320x320 / 512x512 int8 configs).
_base_ = ['./segmentation_onnxruntime_static-128x128.py', './_base_/int8.py']

backend_config = dict(precision='INT8')
