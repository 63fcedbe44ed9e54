"""Generate the tiny synthetic data sets used by the demo and the tests.

Writes ``<out>/tiny_shapes`` (classification) and ``<out>/tiny_coco``
(detection).

Example:
    python tools/misc/make_tiny_datasets.py --out data
"""
import argparse
import os.path as osp

from edgeformer_mm.utils.tiny_datasets import make_tiny_coco, make_tiny_shapes


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='data', help='parent folder')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    root = make_tiny_shapes(osp.join(args.out, 'tiny_shapes'), seed=args.seed)
    print(f'tiny shapes classification set (ImageNet layout): {root}')
    root = make_tiny_coco(osp.join(args.out, 'tiny_coco'), seed=args.seed)
    print(f'tiny shapes detection set (COCO format): {root}')


if __name__ == '__main__':
    main()
