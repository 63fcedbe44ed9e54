# Image classification, ONNX Runtime, fixed 64x64 input: the test size of
# the tiny shapes classifier (configs/mmpretrain/edgeformer/
# edgeformer-xs_1xb32_tiny-shapes.py). tools/deploy.py bakes EdgeFormer for
# this size first.
_base_ = ['./classification_onnxruntime_static-256x256.py']

onnx_config = dict(input_shape=[64, 64])  # [width, height]
