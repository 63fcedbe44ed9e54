# Semantic segmentation, ncnn, int8 in ncnn's own format (Convolution and
# InnerProduct layers with int8 weights and scales), fixed 512x512 input:
# segmentation_ncnn_static-512x512.py, then quantized after calibration
# (tools/deploy.py --calib-images DIR or --calib-dataset SPLIT).
_base_ = ['./segmentation_ncnn_static-512x512.py', './_base_/int8.py']

backend_config = dict(precision='INT8')
