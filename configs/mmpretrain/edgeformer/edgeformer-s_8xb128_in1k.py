# EdgeFormer-S on ImageNet-1k with the official recipe (8 GPUs x 128 images
# at 256x256; ml-cvnets config classification/edgeformer/edgeformer_s.yaml).
# mmpretrain's ImageNet data set and default runtime; what differs is below.
# The recipe, the sampler and what was checked: README.md in this folder.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64.py',
    'mmpretrain::_base_/default_runtime.py'
]

custom_imports = dict(imports=['edgeformer_mm'], allow_failed_imports=False)

# Official input convention: BGR scaled to [0, 1], no mean/std, so that
# official checkpoints work unchanged.
data_preprocessor = dict(mean=[0, 0, 0], std=[255, 255, 255], to_rgb=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='EdgeFormer', arch='s'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='DropoutLinearClsHead',
        num_classes=1000,
        in_channels=640,
        dropout_rate=0.2,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1),
        topk=(1, 5),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.)))

# Multi-scale training as in the official code: every batch is one square
# crop size, and its batch is scaled up for small crops to keep about the
# pixels of 128 x 256^2 (see VariableBatchSampler).
#
# Loading fails naming a corrupt file (docs/data_sets.md). Test pipelines keep
# the stock loaders: inference and deployment tools find them by name.
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(
        type='VariableRandomResizedCrop',
        scale=256,
        interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=288, edge='short',
         interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=256),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    batch_sampler=dict(
        type='VariableBatchSampler',
        crop_sizes=(160, 192, 256, 288, 320),
        base_crop_size=256),
    # The ImageNet train split, wrapped to hand each sample its batch's crop
    # size.
    dataset=dict(
        _delete_=True,
        type='VariableCropDataset',
        dataset=dict(
            type='ImageNet',
            data_root='data/imagenet',
            split='train',
            pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# AdamW with weight decay on every parameter (norms, PEs and meta kernels
# included, as officially), linear warm-up over 3000 iterations from 4e-4 to
# 4e-3, then a per-epoch cosine from 4e-3 to 4e-4 over the 300 epochs.
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=4e-3, betas=(0.9, 0.999), weight_decay=0.025))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=3000),
    dict(type='CosineAnnealingLR', T_max=300, eta_min=4e-4, by_epoch=True,
         begin=0, end=300),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# The official recipe trains with 8 GPUs x 128 images.
auto_scale_lr = dict(base_batch_size=1024)

# EMA of weights and buffers, updated every iteration.
custom_hooks = [
    dict(
        type='EMAHook',
        momentum=0.0005,
        update_buffers=True,
        priority='ABOVE_NORMAL')
]
