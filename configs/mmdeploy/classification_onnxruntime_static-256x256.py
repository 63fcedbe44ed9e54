# Image classification, ONNX Runtime, fixed 256x256 input. tools/deploy.py
# switches EdgeFormer to deploy mode for this size first: fixed GCC kernels
# with BatchNorm and positional embeddings folded in, exported as products
# with constant circulant matrices.
_base_ = ['./_base_/onnx_config.py']

onnx_config = dict(input_shape=[256, 256])  # [width, height]
codebase_config = dict(type='mmpretrain', task='Classification')
backend_config = dict(type='onnxruntime')
