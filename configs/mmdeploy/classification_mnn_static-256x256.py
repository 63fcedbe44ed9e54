# Image classification, MNN (fp32), fixed 256x256 input, for ARM: the
# ONNX Runtime graph (EdgeFormer baked for this size) converted by MNN's
# own converter (blobs `input` -> `output`, the class scores).
_base_ = ['./classification_onnxruntime_static-256x256.py']

backend_config = dict(type='mnn', precision='FP32')
