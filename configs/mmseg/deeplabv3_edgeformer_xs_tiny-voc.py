# DeepLabV3-EdgeFormer-XS on the generated tiny shapes segmentation set (4
# shape classes and background, 128x128 images, some borders labelled 255;
# tools/misc/make_tiny_datasets.py): the official recipe scaled down to a
# few CPU minutes; results: README.md in this folder. As the official
# segmentor starts from an ImageNet backbone, this one starts from the tiny
# shapes classifier:
#   python tools/train.py \
#       configs/mmpretrain/edgeformer/edgeformer-xs_1xb32_tiny-shapes.py
# writes work_dirs/edgeformer-xs_1xb32_tiny-shapes/epoch_12.pth.
_base_ = [
    './deeplabv3_edgeformer_s_voc12aug-512x512.py', '../_base_/tiny_runtime.py'
]

crop_size = (128, 128)
classes = ('background', 'circle', 'square', 'triangle', 'cross')
# The first five PASCAL VOC colours.
palette = [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]

model = dict(
    data_preprocessor=dict(size=crop_size),
    # XS has the same layer5 width as S (160): the head is unchanged.
    backbone=dict(
        arch='xs',
        init_cfg=dict(
            checkpoint='work_dirs/edgeformer-xs_1xb32_tiny-shapes/'
            'epoch_12.pth')),
    decode_head=dict(num_classes=len(classes)))

# The official augmentation scaled to 128: the short side resized to a
# random length from 96 to 192, a random 128x128 crop, a flip.
#
# Loading fails naming a corrupt file (docs/data_sets.md). Test pipelines keep
# the stock loaders: inference and deployment tools find them by name.
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadSegAnnotationsChecked'),
    dict(
        type='RandomChoiceResize',
        scales=list(range(96, 193)),
        resize_type='ResizeShortestEdge',
        max_size=256),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
# mmseg's PascalVOCDataset only takes VOC class names, so the VOC layout is
# read with BaseSegDataset.
dataset = dict(
    type='BaseSegDataset',
    data_root='data/tiny_voc',
    img_suffix='.jpg',
    seg_map_suffix='.png',
    metainfo=dict(classes=classes, palette=palette),
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'))
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        ann_file='ImageSets/Segmentation/train.txt',
        pipeline=train_pipeline,
        **dataset))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        ann_file='ImageSets/Segmentation/val.txt',
        pipeline=test_pipeline,
        **dataset))
test_dataloader = val_dataloader

# Short schedule of the same shape (AdamW, head at 10x, linear warm-up,
# per-epoch cosine), 25 iterations an epoch at 200 training images.
max_epochs = 20
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    _base_.tiny_warmup,
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
auto_scale_lr = dict(base_batch_size=8)
custom_hooks = [_base_.tiny_ema_hook]
default_hooks = dict(
    logger=_base_.tiny_logger_hook,
    checkpoint=dict(_base_.tiny_checkpoint_hook, interval=max_epochs))
randomness = _base_.tiny_randomness
