# Image classification, ncnn, int8 in ncnn's own format (Convolution and
# InnerProduct layers with int8 weights and scales), fixed 256x256 input:
# classification_ncnn_static-256x256.py, then quantized after calibration
# (tools/deploy.py --calib-images DIR or --calib-dataset SPLIT).
_base_ = ['./classification_ncnn_static-256x256.py', './_base_/int8.py']

backend_config = dict(precision='INT8')
