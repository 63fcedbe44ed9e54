"""Run a model on an image: print its predictions and draw them.

Classification (an mmpretrain model name or config) prints the top-5 and
writes the image with its label; detection (an mmdet config) prints the
boxes above ``--score-thr`` and writes the image with them drawn;
segmentation (an mmseg config) prints the share of each predicted class and
writes the image with the predicted mask overlaid.

Examples:
    python demo/image_demo.py data/tiny_shapes/val/circle/circle_0000.png \\
        configs/mmpretrain/edgeformer/edgeformer-xs_1xb32_tiny-shapes.py \\
        --checkpoint work_dirs/edgeformer-xs_1xb32_tiny-shapes/epoch_12.pth
    python demo/image_demo.py data/tiny_coco/val/0000.png \\
        configs/mmdet/ssdlite_edgeformer_xs_tiny-coco.py \\
        --checkpoint work_dirs/ssdlite_edgeformer_xs_tiny-coco/epoch_20.pth
    python demo/image_demo.py data/tiny_voc/JPEGImages/val_0000.jpg \\
        configs/mmseg/deeplabv3_edgeformer_xs_tiny-voc.py \\
        --checkpoint work_dirs/deeplabv3_edgeformer_xs_tiny-voc/epoch_20.pth

MODEL is a model name (``edgeformer-s_8xb128_in1k``; see
``mmpretrain.list_models('edgeformer*')``) or a config file; the config's
``default_scope`` says which codebase runs it.
"""
import argparse
import os.path as osp

import mmcv
import torch
from mmengine.config import Config

import edgeformer_mm  # noqa: F401  (registers the models and their names)

# Small images are enlarged to this side before drawing, so that labels
# stay legible.
MIN_DRAWN_SIDE = 320


def read_enlarged(path: str):
    """The RGB image, enlarged to a side of at least ``MIN_DRAWN_SIDE``,
    and the scale factor."""
    image = mmcv.imread(path, channel_order='rgb')
    scale = max(1., MIN_DRAWN_SIDE / max(image.shape[:2]))
    return mmcv.imrescale(image, scale), scale


def codebase_of(model: str) -> str:
    """'mmpretrain' for model names, else the config's default scope."""
    if not model.endswith('.py'):
        return 'mmpretrain'
    return Config.fromfile(model).get('default_scope', 'mmpretrain')


def classify(args):
    from mmpretrain import ImageClassificationInferencer
    from mmpretrain.visualization import UniversalVisualizer

    pretrained = True if args.checkpoint == 'True' else args.checkpoint
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
        resize=max(image.shape[:2] + (MIN_DRAWN_SIDE, )),
        draw_gt=False,
        out_file=osp.abspath(args.out_file))
    print(f'image with its predicted label: {args.out_file}')


def detect(args):
    from mmdet.apis import inference_detector, init_detector
    from mmdet.visualization import DetLocalVisualizer

    model = init_detector(args.model, args.checkpoint, device=args.device)
    pred = inference_detector(model, args.img)
    classes = model.dataset_meta['classes']
    instances = pred.pred_instances
    instances = instances[instances.scores >= args.score_thr]
    print(f'{args.img}: {len(instances)} boxes with score >= '
          f'{args.score_thr}')
    for box, label, score in zip(instances.bboxes, instances.labels,
                                 instances.scores):
        x1, y1, x2, y2 = box.tolist()
        print(f'  {classes[label]:<16} {score:.3f}  '
              f'({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f})')

    image, scale = read_enlarged(args.img)
    instances.bboxes = instances.bboxes * scale
    pred.pred_instances = instances
    visualizer = DetLocalVisualizer(line_width=2)
    visualizer.dataset_meta = model.dataset_meta
    visualizer.add_datasample(
        'prediction',
        image,
        pred,
        draw_gt=False,
        pred_score_thr=args.score_thr,
        out_file=osp.abspath(args.out_file))
    print(f'image with its predicted boxes: {args.out_file}')


def segment(args):
    from mmengine.structures import PixelData
    from mmseg.apis import inference_model, init_model
    from mmseg.visualization import SegLocalVisualizer

    model = init_model(args.model, args.checkpoint, device=args.device)
    pred = inference_model(model, args.img)
    classes = model.dataset_meta['classes']
    labels = pred.pred_sem_seg.data[0]
    print(f'{args.img}: predicted classes (share of the pixels)')
    for label, count in zip(*labels.unique(return_counts=True)):
        print(f'  {classes[label]:<16} {count / labels.numel():6.1%}')

    image, scale = read_enlarged(args.img)
    pred.pred_sem_seg = PixelData(data=torch.from_numpy(
        mmcv.imresize(
            labels.numpy().astype('uint8'), image.shape[1::-1],
            interpolation='nearest'))[None])
    visualizer = SegLocalVisualizer(alpha=0.5)
    visualizer.dataset_meta = model.dataset_meta
    visualizer.add_datasample(
        'prediction',
        image,
        pred,
        draw_gt=False,
        out_file=osp.abspath(args.out_file))
    print(f'image with its predicted mask: {args.out_file}')


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('img', help='image file')
    parser.add_argument('model', help='model name or config file')
    parser.add_argument(
        '--checkpoint',
        '--pretrained',
        help='checkpoint file (for a model name, True loads its hub weights)')
    parser.add_argument(
        '--out-file',
        default='outputs/image_demo.png',
        help='where to write the image with the predictions drawn')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='detection: lowest score of a printed and drawn box')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()

    codebase = codebase_of(args.model)
    if codebase == 'mmpretrain':
        classify(args)
    elif codebase == 'mmdet':
        detect(args)
    elif codebase == 'mmseg':
        segment(args)
    else:
        parser.error(f'{args.model}: no demo for default_scope {codebase!r}')


if __name__ == '__main__':
    main()
