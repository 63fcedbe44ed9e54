# Image classification, ncnn (fp32 weights), fixed 64x64 input: the test size
# of the tiny shapes classifier (configs/mmpretrain/edgeformer/
# edgeformer-xs_1xb32_tiny-shapes.py).
_base_ = ['./classification_ncnn_static-256x256.py']

onnx_config = dict(input_shape=[64, 64])  # [width, height]
