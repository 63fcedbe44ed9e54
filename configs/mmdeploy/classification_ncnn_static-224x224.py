# Image classification, ncnn (fp32 weights), fixed 224x224 input, for ARM:
# the test size of the ParC ConvNet configs (configs/mmpretrain/
# parc_convnets; EdgeFormer's is 256).
_base_ = ['./classification_ncnn_static-256x256.py']

onnx_config = dict(input_shape=[224, 224])  # [width, height]
