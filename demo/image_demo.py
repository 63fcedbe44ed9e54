"""Classify an image: print the top-5 and write the image with its label.

Example:
    python demo/image_demo.py demo/shapes.png \\
        configs/mmpretrain/edgeformer/edgeformer-xs_1xb32_tiny-shapes.py \\
        --pretrained work_dirs/edgeformer-xs_1xb32_tiny-shapes/epoch_10.pth

MODEL is a model name (``edgeformer-s_8xb128_in1k``; see
``mmpretrain.list_models('edgeformer*')``) or a config file.
"""
import argparse
import os.path as osp

import mmcv
from mmpretrain import ImageClassificationInferencer
from mmpretrain.visualization import UniversalVisualizer

import edgeformer_mm  # noqa: F401  (registers the models and their names)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('img', help='image file')
    parser.add_argument('model', help='model name or config file')
    parser.add_argument(
        '--pretrained', help='checkpoint file (or True for the hub weights)')
    parser.add_argument(
        '--out-file',
        default='outputs/image_demo.png',
        help='where to write the image with its predicted label')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()

    pretrained = True if args.pretrained == 'True' else args.pretrained
    inferencer = ImageClassificationInferencer(
        args.model, pretrained=pretrained, device=args.device)
    pred = inferencer(args.img, return_datasamples=True)[0]
    scores = pred.pred_score
    classes = inferencer.classes or [str(i) for i in range(len(scores))]
    print(f'{args.img}:')
    top = scores.topk(min(5, len(scores)))
    for rank, (score, index) in enumerate(zip(*top), 1):
        print(f'  {rank}. {classes[index]:<24} {score:.4f}')

    image = mmcv.imread(args.img, channel_order='rgb')
    UniversalVisualizer().visualize_cls(
        image,
        pred,
        classes=classes,
        # Small images are enlarged so that the label stays legible.
        resize=max(image.shape[:2] + (320, )),
        draw_gt=False,
        out_file=osp.abspath(args.out_file))
    print(f'image with its predicted label: {args.out_file}')


if __name__ == '__main__':
    main()
