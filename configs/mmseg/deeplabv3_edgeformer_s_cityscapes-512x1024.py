# DeepLabV3-EdgeFormer-S on Cityscapes with 512x1024 crops: non-square
# training and full-size 1024x2048 evaluation, which the official backbone
# cannot run (it takes squares only; ours resizes vertical GCC kernels and
# embeddings to the height and horizontal ones to the width). The recipe is
# the VOC one (AdamW, head at 10x, warm-up then cosine, EMA) with mmseg's
# Cityscapes data pipeline; it is not an official configuration and has not
# been trained here.
_base_ = './deeplabv3_edgeformer_s_voc12aug-512x512.py'

crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=19))

# Loading fails naming a corrupt file (docs/data_sets.md). Test pipelines keep
# the stock loaders: inference and deployment tools find them by name.
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadSegAnnotationsChecked'),
    dict(
        type='RandomResize',
        scale=(2048, 1024),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
data_root = 'data/cityscapes/'
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CityscapesDataset',
        data_root=data_root,
        data_prefix=dict(
            img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CityscapesDataset',
        data_root=data_root,
        data_prefix=dict(
            img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
