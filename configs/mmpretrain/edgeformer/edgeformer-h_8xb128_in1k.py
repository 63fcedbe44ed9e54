# EdgeFormer-H: the recipe of EdgeFormer-S with weight decay 0.05 (official
# yaml classification/edgeformer/edgeformer_h.yaml).
_base_ = './edgeformer-s_8xb128_in1k.py'

model = dict(backbone=dict(arch='h'), head=dict(in_channels=960))
optim_wrapper = dict(optimizer=dict(weight_decay=0.05))
