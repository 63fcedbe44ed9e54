# Mask R-CNN with a ConvNeXt-XT (ConvNeXt-T at half width) backbone on COCO:
# the plain counterpart of
# mask-rcnn_parc-convnext-xt_fpn_amp-ms-crop-3x_coco.py. mmdet's ConvNeXt-T
# Mask R-CNN recipe with only the backbone width changed (README.md). The
# backbone starts from an ImageNet checkpoint of
# configs/mmpretrain/parc_convnets/convnext-xt_32xb128_in1k.py.
_base_ = 'mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'  # noqa: E501

custom_imports = dict(
    imports=['mmpretrain.models', 'edgeformer_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.ConvNeXt',
        arch=dict(depths=[3, 3, 9, 3], channels=[48, 96, 192, 384]),
        out_indices=[0, 1, 2, 3],
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        gap_before_final_norm=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/convnext-xt_32xb128_in1k.pth',
            prefix='backbone.')),
    neck=dict(in_channels=[48, 96, 192, 384]))
