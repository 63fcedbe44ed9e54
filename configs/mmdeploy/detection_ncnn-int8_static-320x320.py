# SSDLite detection, ncnn, int8 in ncnn's own format (Convolution and
# InnerProduct layers with int8 weights and scales), fixed 320x320 input:
# detection_ncnn_static-320x320.py, then quantized after calibration
# (tools/deploy.py --calib-images DIR or --calib-dataset SPLIT).
_base_ = ['./detection_ncnn_static-320x320.py', './_base_/int8.py']

backend_config = dict(precision='INT8')
