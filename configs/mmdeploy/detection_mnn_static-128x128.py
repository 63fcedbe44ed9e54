# SSDLite detection, MNN (fp32), fixed 128x128 input: the tiny detector's.
_base_ = ['./detection_mnn_static-320x320.py']

onnx_config = dict(input_shape=[128, 128])  # [width, height]
