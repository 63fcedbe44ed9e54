"""The main job: build EdgeFormer-XS/S/H and print what they are.

For each arch: the parameter count of the ImageNet classifier (backbone,
global average pooling, 1000-class linear head), its MACs at 256x256 and the
backbone's feature shapes at a non-square input.
"""
import argparse

import torch
from mmpretrain.registry import MODELS

from edgeformer_mm.models import EdgeFormer
from edgeformer_mm.utils import count_macs, count_parameters

# The official models' figures: parameters of the classifier and its MACs at
# 256x256, counted like count_macs does (the official code, random weights).
OFFICIAL = {
    'xs': (2_185_384, 944.0169e6),
    's': (5_037_088, 1657.3476e6),
    'h': (20_403_940, 8544.4187e6),
}


def build_classifier(arch: str):
    backbone = EdgeFormer(arch=arch)
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='EdgeFormer', arch=arch),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=1000,
                in_channels=backbone.stage_channels[-1])))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=(224, 320),
        metavar=('H', 'W'),
        help='input size for the feature shapes')
    args = parser.parse_args()

    torch.manual_seed(0)
    print(f"{'arch':<5}{'params':>13}{'official':>13}"
          f"{'MACs@256':>12}{'official':>12}")
    for arch, (official_params, official_macs) in OFFICIAL.items():
        model = build_classifier(arch).eval()
        params = count_parameters(model)
        macs = count_macs(model, torch.rand(1, 3, 256, 256))
        print(f'{arch:<5}{params:>13,}{official_params:>13,}'
              f'{macs / 1e6:>11.1f}M{official_macs / 1e6:>11.1f}M')

    height, width = args.shape
    print(f'\nFeature shapes (C, H, W) at a {height}x{width} input:')
    inputs = torch.rand(1, 3, height, width)
    for arch in OFFICIAL:
        backbone = EdgeFormer(arch=arch, out_indices=range(7)).eval()
        with torch.no_grad():
            outs = backbone(inputs)
        print(f'  {arch}:')
        for name, out in zip(backbone.stage_names, outs):
            print(f'    {name:<13}{str(tuple(out.shape[1:])):>18}')


if __name__ == '__main__':
    main()
