# ConvNeXt-XT (ConvNeXt-T at half width) on ImageNet-1k with the ConvNeXt
# recipe: the plain counterpart of parc-convnext-xt_32xb128_in1k.py.
#
# The recipe of all six configs of this folder (the paper trains its ParC
# ConvNets and their plain counterparts "with the training strategy proposed
# in ConvNeXt"): mmpretrain's convnext-tiny_32xb128_in1k.py unchanged -- 300
# epochs of AdamW (lr 4e-3 for 32 x 128 images, weight decay 0.05, none on
# norms and biases), 20 warm-up epochs then cosine, RandomResizedCrop 224,
# RandAugment (m9, mstd 0.5), random erasing 0.25, Mixup 0.8, CutMix 1.0,
# label smoothing 0.1, EMA (momentum 1e-4). Stochastic depth is our choice,
# the paper does not give it: 0.1 here (ConvNeXt-T's).
_base_ = 'mmpretrain::convnext/convnext-tiny_32xb128_in1k.py'

custom_imports = dict(imports=['edgeformer_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvNeXt',
        arch=dict(depths=[3, 3, 9, 3], channels=[48, 96, 192, 384]),
        drop_path_rate=0.1),
    head=dict(in_channels=384))
