# MobileNetV2 on ImageNet-1k with the ConvNeXt recipe (see
# convnext-xt_32xb128_in1k.py): the plain counterpart of
# parc-mobilenet-v2_32xb128_in1k.py. mmpretrain's MobileNetV2 has no
# stochastic depth; dropout 0.2 before the classifier as in the reference.
_base_ = './convnext-xt_32xb128_in1k.py'

model = dict(
    backbone=dict(_delete_=True, type='MobileNetV2', widen_factor=1.0),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='DropoutLinearClsHead', in_channels=1280, dropout_rate=0.2))
