# Image classification, MNN (fp32), fixed 64x64 input: the tiny
# classifier's.
_base_ = ['./classification_mnn_static-256x256.py']

onnx_config = dict(input_shape=[64, 64])  # [width, height]
