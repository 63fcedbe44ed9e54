"""int8 against fp32, for ONNX Runtime and ncnn, measured where we can
without ImageNet, COCO or VOC.

1. The tiny sets with the models `make demo` trained (--demo-dir): each of
   the three is converted by tools/deploy.py to fp32 and int8 bundles for
   both backends (int8 calibrated on --calib-num images of its training
   set, through the test pipeline), and every bundle is evaluated on the
   tiny test set through the torch-free runtime, from the image files
   (top-1, bbox mAP, mIoU), next to PyTorch; then each int8 bundle against
   its fp32 bundle on scikit-image's test photos.
2. Classifiers with calibrated random weights (--models, EdgeFormer-S and
   the hybrids by default) at --size on the same photos: top-1 agreement,
   cosine similarity and relative error of the logits, fp32 vs int8 of the
   same converted model, calibrated on scikit-image's other photos; with
   inputs in [0, 1] and normalized by ImageNet's mean and std (random
   weights quantize very differently with the two).

Writes int8_accuracy.md to --work-dir (the bundles under it).

Example:
    make demo   # trains the tiny models into work_dirs/demo
    python tools/analysis/int8_accuracy.py --work-dir work_dirs/int8
"""
import argparse
import os
import os.path as osp
import subprocess
import sys

from mmengine.config import Config

from edgeformer_mm.analysis import BENCHMARK_MODELS
from edgeformer_mm.analysis.benchmark import NORMALIZATIONS
from edgeformer_mm.analysis.int8 import (bundle_photo_agreement,
                                         classifier_photo_agreement)
from edgeformer_mm.analysis.photos import TEST_PHOTOS, copy_photos
from edgeformer_mm.deployment import (CALIBRATION_METHODS, FP32_LAYER_CHOICES,
                                      init_reference_model,
                                      reference_prediction)
from edgeformer_mm.deployment.evaluate import evaluate_predictions
from edgeformer_runtime import Predictor

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# Task -> (model config, the demo's run directory, input size, the metric
# and its name in the table).
TINY_MODELS = {
    'classification':
    ('configs/mmpretrain/edgeformer/edgeformer-xs_1xb32_tiny-shapes.py',
     'edgeformer-xs_1xb32_tiny-shapes', 64, 'accuracy/top1', 'top-1 (%)'),
    'detection':
    ('configs/mmdet/ssdlite_edgeformer_xs_tiny-coco.py',
     'ssdlite_edgeformer_xs_tiny-coco', 128, 'coco/bbox_mAP', 'bbox mAP (%)'),
    'segmentation':
    ('configs/mmseg/deeplabv3_edgeformer_xs_tiny-voc.py',
     'deeplabv3_edgeformer_xs_tiny-voc', 128, 'mIoU', 'mIoU (%)'),
}
BACKENDS = ('onnxruntime', 'ncnn')


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/int8_accuracy')
    parser.add_argument(
        '--demo-dir',
        default='work_dirs/demo',
        help="make demo's work dir with the trained tiny models (the tiny "
        'sets are read from data/ of the current directory)')
    parser.add_argument(
        '--models',
        nargs='*',
        default=['EdgeFormer-S', 'MobileViT-S', 'EdgeNeXt-S'],
        choices=list(BENCHMARK_MODELS),
        help='classifiers compared with calibrated random weights')
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument(
        '--normalizations',
        nargs='+',
        default=list(NORMALIZATIONS),
        choices=list(NORMALIZATIONS),
        help='input normalizations of the classifiers (default: both): '
        '[0, 1] as EdgeFormer and MobileViT are trained, and ImageNet\'s '
        'mean and std as EdgeNeXt is')
    parser.add_argument(
        '--calib-method', choices=CALIBRATION_METHODS, default='percentile')
    parser.add_argument(
        '--fp32-layers', nargs='*', choices=FP32_LAYER_CHOICES, default=[])
    parser.add_argument(
        '--calib-num',
        type=int,
        default=100,
        help='calibration images of each tiny training set')
    return parser.parse_args()


def deploy(model_cfg: str, checkpoint: str, deploy_cfg: str, image: str,
           work_dir: str, args) -> str:
    """Convert with tools/deploy.py (its check printed); the bundle."""
    command = [
        sys.executable,
        osp.join(REPO, 'tools', 'deploy.py'), model_cfg, checkpoint,
        deploy_cfg, image, '--work-dir', work_dir
    ]
    if '-int8_' in deploy_cfg:
        command += [
            '--calib-dataset', 'train', '--calib-num',
            str(args.calib_num), '--calib-method', args.calib_method,
            '--fp32-layers', *args.fp32_layers
        ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode not in (0, 1):  # 1: outside the check's tolerances
        sys.exit(f'tools/deploy.py failed:\n{result.stderr[-3000:]}')
    print(
        next(line for line in result.stdout.splitlines()
             if ' vs PyTorch on ' in line))
    return work_dir


def tiny_set_tables(args, photos) -> list:
    """Markdown lines: the tiny sets' metrics and the photo agreement."""
    metric_rows, photo_rows = [], []
    for task, (config, run, size, metric, title) in TINY_MODELS.items():
        model_cfg = osp.join(REPO, config)
        run_dir = osp.join(args.demo_dir, run)
        with open(osp.join(run_dir, 'last_checkpoint')) as f:
            # the path written at training time, or the run dir moved
            checkpoint = f.read().strip()
        if not osp.exists(checkpoint):
            checkpoint = osp.join(run_dir, osp.basename(checkpoint))
        cfg = Config.fromfile(model_cfg)
        reference = init_reference_model(task, cfg, checkpoint, 'cpu')
        image = photos[1]
        figures = {
            'PyTorch':
            evaluate_predictions(
                cfg, lambda path: reference_prediction(task, reference, path))
        }
        bundles = {}
        for backend in BACKENDS:
            for precision in ('', '-int8'):
                deploy_cfg = osp.join(
                    REPO, 'configs', 'mmdeploy',
                    f'{task}_{backend}{precision}_static-{size}x{size}.py')
                bundles[backend, precision] = deploy(
                    model_cfg, checkpoint, deploy_cfg, image,
                    osp.join(args.work_dir, f'{task}_{backend}{precision}'),
                    args)
                figures[f'{backend}{precision or " fp32"}'] = (
                    evaluate_predictions(
                        cfg, Predictor(bundles[backend, precision])))
            photo_rows.append(
                (task, backend,
                 bundle_photo_agreement(bundles[backend, ''],
                                        bundles[backend, '-int8'], photos)))
        scale = 100 if task == 'detection' else 1
        metric_rows.append((task, title, {
            name: scale * float(values[metric])
            for name, values in figures.items()
        }))
    columns = list(metric_rows[0][2])
    lines = [
        '## Tiny sets (trained by make demo)', '',
        f'int8: {args.calib_method} calibration on {args.calib_num} training '
        f'images, fp32 layers: {", ".join(args.fp32_layers) or "none"}. '
        'Every bundle from the image files through the torch-free runtime.',
        '', '| task | metric | ' + ' | '.join(columns) + ' |',
        '|---|---|' + '---|' * len(columns)
    ]
    for task, metric, values in metric_rows:
        lines.append(f'| {task} | {metric} | ' +
                     ' | '.join(f'{values[c]:.1f}' for c in columns) + ' |')
    lines += [
        '', f'int8 bundle vs fp32 bundle on {len(photos)} photos:', '',
        '| task | backend | figures |', '|---|---|---|'
    ]
    lines += [
        f'| {task} | {backend} | {format_figures(values)} |'
        for task, backend, values in photo_rows
    ]
    return lines + ['']


def format_figures(values: dict) -> str:
    return ', '.join(f'{name} {value:.4g}' for name, value in values.items())


def classifier_table(args, num_photos: int) -> list:
    lines = [
        f'## Classifiers with calibrated random weights, {args.size}x'
        f'{args.size}', '',
        f'fp32 vs int8 of the same converted model on {num_photos} photos '
        f'({args.calib_method} calibration on 12 other photos; fp32 layers: '
        f'{", ".join(args.fp32_layers) or "none"}).', '',
        '| input | model | backend | top-1 agreement | logits cosine | '
        'logits relative error | MACs in int8 |',
        '|---|---|---|---|---|---|---|'
    ]
    for normalization in args.normalizations:
        rows = classifier_photo_agreement(args.models, args.size, BACKENDS,
                                          args.calib_method, args.fp32_layers,
                                          normalization)
        lines += [
            f'| {normalization} | {row["model"]} | {row["backend"]} | '
            f'{row["top1"]:.3f} | {row["cosine"]:.4f} | '
            f'{row["relative_error"]:.3f} | '
            f'{100 * row["int8_mac_share"]:.1f}% |' for row in rows
        ]
    return lines + ['']


def main():
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    photos = copy_photos(TEST_PHOTOS, osp.join(args.work_dir, 'photos'))
    lines = ['# int8 accuracy', '']
    if osp.isdir(args.demo_dir):
        lines += tiny_set_tables(args, photos)
    else:
        print(f'{args.demo_dir} not found (make demo trains the tiny '
              'models): the tiny sets are skipped')
    if args.models:
        lines += classifier_table(args, len(photos))
    report = '\n'.join(lines)
    with open(osp.join(args.work_dir, 'int8_accuracy.md'), 'w') as f:
        f.write(report)
    print(report)


if __name__ == '__main__':
    main()
