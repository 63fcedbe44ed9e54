# Semantic segmentation, MNN, int8 by MNN's own quantizer (convolutions with
# int8 weights and activations; products of matrices fp32), fixed 128x128
# input: segmentation_mnn_static-128x128.py, then quantized after calibration
# on our preprocessed images (tools/deploy.py --calib-images DIR or
# --calib-dataset SPLIT). 'minmax' is MNN's EMA calibration; MNN has no
# percentile one, and its KL ('entropy') crashes on the detection and
# segmentation graphs (mnn 3.6.1).
_base_ = ['./segmentation_mnn_static-128x128.py', './_base_/int8.py']

backend_config = dict(precision='INT8')
calib_config = dict(method='minmax')
