# Mask R-CNN with a ParC-ConvNeXt-XT backbone on COCO (README.md). Everything
# but the backbone is as in its plain counterpart,
# mask-rcnn_convnext-xt_fpn_amp-ms-crop-3x_coco.py. The backbone starts from
# an ImageNet checkpoint of
# configs/mmpretrain/parc_convnets/parc-convnext-xt_32xb128_in1k.py.
_base_ = './mask-rcnn_convnext-xt_fpn_amp-ms-crop-3x_coco.py'

model = dict(
    backbone=dict(
        type='edgeformer_mm.ParCConvNeXt',
        arch='xtiny',
        init_cfg=dict(
            checkpoint='checkpoints/parc-convnext-xt_32xb128_in1k.pth')))
