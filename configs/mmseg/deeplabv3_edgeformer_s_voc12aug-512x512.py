# DeepLabV3-EdgeFormer-S on PASCAL VOC 2012 + SBD ("aug") with 512x512
# crops and the official recipe (4 GPUs x 8 images; ml-cvnets config
# segmentation/edgeformer/deeplabv3_edgeformer_s.yaml): mmseg's VOC data set
# and default runtime; what differs is below. The structure is the official
# segmentor's, so that its weights can be converted exactly; what was
# checked: README.md in this folder.
_base_ = [
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    'mmseg::_base_/default_runtime.py'
]

custom_imports = dict(imports=['edgeformer_mm'], allow_failed_imports=False)

crop_size = (512, 512)
# Official input convention: BGR scaled to [0, 1], no mean/std, as the
# backbone was pretrained. Training batches are padded to the crop size
# (labels with 255, ignored).
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[0, 0, 0],
    std=[255, 255, 255],
    bgr_to_rgb=False,
    pad_val=0,
    seg_pad_val=255,
    size=crop_size)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    # Output stride 16 as officially: layer5's first (MobileNetV2) block
    # keeps stride 1, no conv is dilated, and layer5's GCC kernels and
    # embeddings are resized to the 32x32 map of a 512 crop. Only layer5 is
    # used; the expansion conv is not built.
    backbone=dict(
        type='EdgeFormer',
        arch='s',
        output_stride=16,
        out_indices=(5, ),
        norm_cfg=norm_cfg,
        init_cfg=dict(
            type='Pretrained',
            prefix='backbone.',
            # An EdgeFormer-S ImageNet checkpoint of this package (e.g.
            # from configs/mmpretrain/edgeformer/edgeformer-s_8xb128_in1k.py).
            checkpoint='checkpoints/edgeformer-s_8xb128_in1k.pth')),
    # ASPP as officially: a 1x1 branch, 3x3 branches with rates 6, 12 and 18
    # and image pooling, 256 channels each, then a 1x1 projection (mmseg's
    # ASPPHead: 3x3), dropout 0.1 after it and channel dropout 0.1 before
    # the classifier; ReLU, no auxiliary head. Logits are upsampled
    # bilinearly (align_corners=False) to the input.
    decode_head=dict(
        type='DeepLabV3Head',
        in_channels=160,
        in_index=0,
        channels=256,
        dilations=(1, 6, 12, 18),
        bottleneck_kernel_size=1,
        bottleneck_dropout=0.1,
        dropout_ratio=0.1,
        num_classes=21,
        norm_cfg=norm_cfg,
        align_corners=False,
        # Averaged over the labelled pixels only, as officially (mmseg's
        # default also counts the ignored ones).
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            avg_non_ignore=True,
            loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

# The official augmentation: the short side resized to a random length from
# 384 to 768 (the long side at most 1024), a random 512x512 crop (padded
# with ignored labels by the data preprocessor) and a horizontal flip.
#
# Loading fails naming a corrupt file (docs/data_sets.md). Test pipelines keep
# the stock loaders: inference and deployment tools find them by name.
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadSegAnnotationsChecked'),
    dict(
        type='RandomChoiceResize',
        scales=list(range(384, 769)),
        resize_type='ResizeShortestEdge',
        max_size=1024),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
# The official evaluation resizes every image to 512x512 and the prediction
# back (its backbone takes squares only); ours takes any size, so
# dict(type='Resize', scale=(2048, 512), keep_ratio=True) also works.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
data_root = 'data/VOCdevkit/VOC2012'
# VOC 2012 train plus the SBD annotations, as mmseg's voc12aug. The official
# run also adds COCO images of the VOC classes, which mmseg has no loader
# for.
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(
                type='PascalVOCDataset',
                data_root=data_root,
                data_prefix=dict(
                    img_path='JPEGImages', seg_map_path='SegmentationClass'),
                ann_file='ImageSets/Segmentation/train.txt',
                pipeline=train_pipeline),
            dict(
                type='PascalVOCDataset',
                data_root=data_root,
                data_prefix=dict(
                    img_path='JPEGImages',
                    seg_map_path='SegmentationClassAug'),
                ann_file='ImageSets/Segmentation/aug.txt',
                pipeline=train_pipeline)
        ]))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# AdamW with weight decay 0.01 on every parameter, the head at 10x the
# learning rate; linear warm-up over 500 iterations from 9e-5 to 9e-4, then
# a per-epoch cosine to 1e-6 over the 50 epochs.
max_epochs = 50
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=9e-4, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'decode_head': dict(lr_mult=10.)}))
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
# The official recipe trains with 4 GPUs x 8 images.
auto_scale_lr = dict(enable=False, base_batch_size=32)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=True)
# EMA of weights and buffers, updated every iteration, as officially.
custom_hooks = [
    dict(
        type='EMAHook',
        momentum=0.0005,
        update_buffers=True,
        priority='ABOVE_NORMAL')
]
