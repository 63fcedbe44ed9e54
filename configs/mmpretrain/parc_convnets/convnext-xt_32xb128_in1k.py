# ConvNeXt-XT (ConvNeXt-T at half width) on ImageNet-1k with the ConvNeXt
# recipe: the plain counterpart of parc-convnext-xt_32xb128_in1k.py.
# mmpretrain's convnext-tiny_32xb128_in1k.py, the recipe of all six ImageNet
# configs of this folder (README.md), with only the backbone width changed.
# Stochastic depth is our choice, the paper does not give it: 0.1 here
# (ConvNeXt-T's).
_base_ = 'mmpretrain::convnext/convnext-tiny_32xb128_in1k.py'

custom_imports = dict(imports=['edgeformer_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvNeXt',
        arch=dict(depths=[3, 3, 9, 3], channels=[48, 96, 192, 384]),
        drop_path_rate=0.1),
    head=dict(in_channels=384))
