# DeepLabV3-EdgeFormer-S at output stride 8 (layer4 and layer5 at 1/8 of the
# input): the official code's output_stride=8 option, which its released
# model does not use. layer4's first block keeps stride 1, and layer5's,
# also at stride 1, runs its depthwise conv with dilation 2; the GCCs
# resize their kernels and embeddings to the 64x64 maps of a 512 crop. Same
# parameters as output stride 16; about 2.6x the MACs.
_base_ = './deeplabv3_edgeformer_s_voc12aug-512x512.py'

model = dict(backbone=dict(output_stride=8))
