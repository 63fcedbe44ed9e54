# Image classification, ONNX Runtime, fixed 224x224 input: the test size of
# the ParC ConvNet configs (configs/mmpretrain/parc_convnets; EdgeFormer's is
# 256). tools/deploy.py bakes the ParC blocks for this size first.
_base_ = ['./classification_onnxruntime_static-256x256.py']

onnx_config = dict(input_shape=[224, 224])  # [width, height]
