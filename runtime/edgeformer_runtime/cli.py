"""``edgeformer-run BUNDLE_DIR IMAGE [--out OUT]``: predict with a bundle and
print one JSON object.

Classification prints ``pred_label``, ``pred_score`` and ``top5``; detection
the ``detections`` in image pixels; segmentation writes the label map to
OUT as a PNG at the image's size and prints its path and shape. Errors (a
bad bundle or image) exit with status 1 and one line on stderr.
"""
import argparse
import json
import sys

import cv2

from .bundle import BundleError
from .predictor import Predictor
from .preprocess import ImageError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='edgeformer-run',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('bundle', help='bundle directory (tools/deploy.py)')
    parser.add_argument('image', help='image file')
    parser.add_argument(
        '--out', help='segmentation: where to write the label map (PNG)')
    parser.add_argument(
        '--threads', type=int, help="the backend's threads (default: its own)")
    parser.add_argument(
        '--ncnn-fp16',
        choices=['bundle', 'on', 'off'],
        default='bundle',
        help="ncnn: fp16 storage and arithmetic where the CPU has them "
        "(ncnn's default, 'on'), fp32 throughout ('off'), or as the bundle's "
        "precision says (default)")
    return parser.parse_args(argv)


def run(args) -> dict:
    """The JSON-ready prediction of ``args.image``."""
    if not (args.out is None or args.out.lower().endswith('.png')):
        raise ImageError(f'--out must be a .png file, not {args.out}')
    fp16 = {'bundle': None, 'on': True, 'off': False}[args.ncnn_fp16]
    predictor = Predictor(args.bundle, args.threads, fp16)
    if predictor.task == 'segmentation' and args.out is None:
        raise ImageError('a segmentation bundle writes a label map: give '
                         '--out FILE.png')
    result = predictor(args.image)
    if predictor.task == 'classification':
        result.pop('pred_scores')
    elif predictor.task == 'segmentation':
        label_map = result.pop('label_map')
        if not cv2.imwrite(args.out, label_map):
            raise OSError(f'cannot write {args.out}')
        result.update(out=args.out, shape=list(label_map.shape))
    return result


def main(argv=None):
    args = parse_args(argv)
    try:
        result = run(args)
    except (BundleError, ImageError, ImportError, OSError) as error:
        sys.exit(f'edgeformer-run: error: {error}')
    print(json.dumps(result))


if __name__ == '__main__':
    main()
