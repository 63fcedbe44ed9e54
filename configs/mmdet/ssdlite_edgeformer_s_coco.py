# SSDLite-EdgeFormer-S on COCO at 320x320 with the official recipe (4 GPUs x
# 32 images; ml-cvnets config detection/edgeformer/ssd_edgeformer_s.yaml):
# mmdet's COCO data set and default runtime; what differs is below. The
# structure reproduces the official detector so that its weights can be
# converted exactly; how it differs (the head's depthwise convs, the priors)
# and what was checked: README.md in this folder.
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/default_runtime.py'
]

custom_imports = dict(imports=['edgeformer_mm'], allow_failed_imports=False)

input_size = 320
# Prior box sizes of the official SSD: linspace(0.1, 1.05, 7) x input_size.
# Level i has a box of side prior_sizes[i], one of side
# sqrt(prior_sizes[i] * prior_sizes[i + 1]) and, per aspect ratio r, boxes of
# prior_sizes[i] * sqrt(r) by prior_sizes[i] / sqrt(r) (both orientations),
# in this order (scale_major=False), as officially.
prior_sizes = [input_size * (0.1 + 0.95 * i / 6) for i in range(7)]

# Official input convention: BGR scaled to [0, 1], no mean/std, as the
# backbone was pretrained.
data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[0, 0, 0],
    std=[255, 255, 255],
    bgr_to_rgb=False,
    pad_size_divisor=1)
model = dict(
    type='SingleStageDetector',
    data_preprocessor=data_preprocessor,
    # layer4 (128 channels, stride 16) and layer5 (160, stride 32); the
    # expansion conv is not built.
    backbone=dict(
        type='EdgeFormer',
        arch='s',
        out_indices=(4, 5),
        init_cfg=dict(
            type='Pretrained',
            prefix='backbone.',
            # An EdgeFormer-S ImageNet checkpoint of this package (e.g.
            # from configs/mmpretrain/edgeformer/edgeformer-s_8xb128_in1k.py).
            checkpoint='checkpoints/edgeformer-s_8xb128_in1k.pth')),
    # The official projections 128->512 and 160->256 (1x1 + BN + ReLU) sit
    # in the official head modules; here they are the neck's input_projs so
    # that the head sees the six levels' widths. The extra levels (strides
    # 64, 128, 256) grow from the unprojected layer5, then the global level.
    neck=dict(
        type='SSDLiteNeck',
        in_channels=(128, 160),
        out_channels=(512, 256, 256, 128, 128, 64),
        global_pool=True,
        norm_cfg=dict(type='BN'),
        act_cfg=dict(type='ReLU')),
    bbox_head=dict(
        # mmdet's SSDHead, fixed for predict; the global level predicts with
        # a plain 1x1 conv as officially.
        type='SSDLiteHead',
        in_channels=(512, 256, 256, 128, 128, 64),
        num_classes=80,
        use_depthwise=True,
        plain_levels=(5, ),
        # The official depthwise conv has BN but no activation.
        norm_cfg=dict(type='BN'),
        act_cfg=None,
        init_cfg=dict(
            type='Xavier', layer='Conv2d', distribution='uniform', bias=0),
        # The official priors at 320x320 (3232 boxes): at this size the
        # strides below give the official centres (feature maps of 20, 10, 5,
        # 3, 2 and 1); sizes are not clipped to the image (README.md).
        anchor_generator=dict(
            type='SSDAnchorGenerator',
            scale_major=False,
            strides=[16, 32, 64, input_size / 3, 160, 320],
            ratios=[[2, 3], [2, 3], [2, 3], [2, 3], [2, 3], [2]],
            min_sizes=prior_sizes[:-1],
            max_sizes=prior_sizes[1:]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[0.1, 0.1, 0.2, 0.2])),
    # Official matching: IoU 0.5, each ground truth also takes its best
    # prior; multibox loss with 3 hard negatives per positive.
    train_cfg=dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.5,
            min_pos_iou=0.,
            ignore_iof_thr=-1,
            gt_max_assign_all=False),
        sampler=dict(type='PseudoSampler'),
        smoothl1_beta=1.,
        allowed_border=-1,
        pos_weight=-1,
        neg_pos_ratio=3,
        debug=False),
    # Official: NMS IoU 0.5, score threshold 0.01 for COCO evaluation.
    test_cfg=dict(
        nms_pre=1000,
        nms=dict(type='nms', iou_threshold=0.5),
        min_bbox_size=0,
        score_thr=0.01,
        max_per_img=200))

# The official augmentation: min-IoU random crop (SSDCroping), photometric
# distortion, horizontal flip, resize to 320x320. Its zoom-out (mmdet's
# Expand) is commented out in the official code, so there is none here.
#
# Loading fails naming a corrupt file (docs/data_sets.md). Test pipelines keep
# the stock loaders: inference and deployment tools find them by name.
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='MinIoURandomCrop',
        min_ious=(0.1, 0.3, 0.5, 0.7, 0.9),
        min_crop_size=0.3),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    batch_sampler=None,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=32, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# AdamW with weight decay on every parameter, linear warm-up over 500
# iterations from 9e-5 to 9e-4, then a per-epoch cosine to 1e-6 over the
# 200 epochs.
max_epochs = 200
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=9e-4, betas=(0.9, 0.999), weight_decay=0.02))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=500),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=1e-6,
        by_epoch=True,
        begin=0,
        end=max_epochs)
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# The official recipe trains with 4 GPUs x 32 images, with SyncBN: mmengine
# converts every BN to SyncBN when distributed on GPUs (on CPU, where torch
# has none, edgeformer_mm's runner keeps BN and says so).
auto_scale_lr = dict(base_batch_size=128)
sync_bn = 'torch'

# EMA of weights and buffers, updated every iteration, as officially.
custom_hooks = [
    dict(
        type='EMAHook',
        momentum=0.0005,
        update_buffers=True,
        priority='ABOVE_NORMAL'),
    dict(type='CheckInvalidLossHook', interval=50, priority='VERY_LOW')
]
