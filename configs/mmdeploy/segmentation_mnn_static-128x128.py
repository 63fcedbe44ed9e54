# Semantic segmentation, MNN (fp32), fixed 128x128 input: the tiny
# segmentor's.
_base_ = ['./segmentation_mnn_static-512x512.py']

onnx_config = dict(input_shape=[128, 128])  # [width, height]
