"""Generate the tiny synthetic data sets used by the demo and the tests.

Writes ``<out>/tiny_shapes`` (classification, ImageNet layout),
``<out>/tiny_coco`` (detection, COCO format) and ``<out>/tiny_voc``
(semantic segmentation, PASCAL VOC layout; the scenes of tiny_coco).

Example:
    python tools/misc/make_tiny_datasets.py --out data
"""
import argparse
import os.path as osp

from edgeformer_mm.datasets.synthetic import (make_tiny_coco,
                                               make_tiny_shapes, make_tiny_voc)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='data', help='parent folder')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    root = make_tiny_shapes(osp.join(args.out, 'tiny_shapes'), seed=args.seed)
    print(f'tiny shapes classification set (ImageNet layout): {root}')
    root = make_tiny_coco(osp.join(args.out, 'tiny_coco'), seed=args.seed)
    print(f'tiny shapes detection set (COCO format): {root}')
    root = make_tiny_voc(osp.join(args.out, 'tiny_voc'), seed=args.seed)
    print(f'tiny shapes segmentation set (PASCAL VOC layout): {root}')


if __name__ == '__main__':
    main()
