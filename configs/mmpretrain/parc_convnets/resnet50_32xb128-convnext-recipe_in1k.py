# ResNet-50 on ImageNet-1k with the ConvNeXt recipe (see
# convnext-xt_32xb128_in1k.py): the plain counterpart of
# parc-resnet50_32xb128_in1k.py. Stochastic depth 0.05 is our choice (that of
# mmpretrain's RSB-A1 ResNet-50 recipe); the paper does not give it.
_base_ = './convnext-xt_32xb128_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True, type='ResNet', depth=50, drop_path_rate=0.05),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(in_channels=2048))
