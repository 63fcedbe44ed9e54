# ParC-ResNet-50 on ImageNet-1k with the ConvNeXt recipe (see
# resnet50_32xb128-convnext-recipe_in1k.py, its plain counterpart: only the
# backbone type differs).
_base_ = './resnet50_32xb128-convnext-recipe_in1k.py'

model = dict(backbone=dict(type='ParCResNet'))
