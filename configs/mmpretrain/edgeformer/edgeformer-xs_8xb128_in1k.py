# EdgeFormer-XS: the recipe of EdgeFormer-S (official yaml
# classification/edgeformer/edgeformer_xs.yaml differs only in the model).
_base_ = './edgeformer-s_8xb128_in1k.py'

model = dict(backbone=dict(arch='xs'))
