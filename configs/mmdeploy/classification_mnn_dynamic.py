# Image classification, MNN (fp32), any height and width: the dynamic
# ONNX Runtime graph (GCC kernels resized inside it) converted by MNN, which
# runs it at any input size.
_base_ = ['./classification_onnxruntime_dynamic.py']

backend_config = dict(type='mnn', precision='FP32')
