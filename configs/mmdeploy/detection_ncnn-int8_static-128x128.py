# The tiny detection model's 128x128 input, int8:
# detection_ncnn_static-128x128.py, then quantized after calibration (see the
# 256x256 / 320x320 / 512x512 int8 configs).
_base_ = ['./detection_ncnn_static-128x128.py', './_base_/int8.py']

backend_config = dict(precision='INT8')
