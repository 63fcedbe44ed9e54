# Image classification, ONNX Runtime, any batch size, height and width. The
# GCC kernels are resized inside the graph and applied as products with
# circulant matrices (a convolution whose kernel size follows the input
# cannot be exported).
_base_ = ['./_base_/onnx_config.py']

onnx_config = dict(
    dynamic_axes=dict(
        input=dict({
            0: 'batch',
            2: 'height',
            3: 'width'
        }),
        output=dict({0: 'batch'})))
codebase_config = dict(type='mmpretrain', task='Classification')
backend_config = dict(type='onnxruntime')
