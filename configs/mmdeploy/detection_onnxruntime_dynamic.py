# SSDLite detection, ONNX Runtime, any height and width (batch 1): GCC
# kernels and SSD priors are computed inside the graph for the input size.
_base_ = ['./_base_/detection.py']

onnx_config = dict(
    dynamic_axes=dict(
        input=dict({
            0: 'batch',
            2: 'height',
            3: 'width'
        }),
        dets=dict({
            0: 'batch',
            1: 'num_dets'
        }),
        labels=dict({
            0: 'batch',
            1: 'num_dets'
        })))
backend_config = dict(type='onnxruntime')
