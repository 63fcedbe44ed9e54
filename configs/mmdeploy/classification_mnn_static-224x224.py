# Image classification, MNN (fp32), fixed 224x224 input: the ParC
# ConvNets' test size.
_base_ = ['./classification_mnn_static-256x256.py']

onnx_config = dict(input_shape=[224, 224])  # [width, height]
