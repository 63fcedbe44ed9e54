"""The main job.

1. For EdgeFormer-XS/S/H: the parameter count of the ImageNet classifier
   (backbone, global average pooling, 1000-class linear head), its MACs at
   256x256 and the backbone's feature shapes at a non-square input.
2. Trains EdgeFormer-XS from scratch on the generated tiny shapes set with
   the official recipe scaled down (a few CPU minutes), prints top-1 before
   and after, and writes a validation image with its predicted label.
3. Trains SSDLite-EdgeFormer-XS on the generated tiny COCO-format set, its
   backbone initialised from step 2's classifier as a detector's backbone
   is from an ImageNet one, prints bbox mAP before and after, and writes a
   validation image with its predicted boxes.
4. The same for DeepLabV3-EdgeFormer-XS on the generated tiny VOC-format
   segmentation set: mIoU before and after, a validation image with its
   predicted mask.
5. Deploys the three trained models to ONNX Runtime and ncnn at their
   input size (tools/deploy.py with the static configs in configs/mmdeploy)
   as bundles, and prints how far each backend is from PyTorch on a
   validation image and the latencies at one thread.
6. Runs the six bundles as a device would, with the torch-free runtime's
   command (edgeformer-run, a process without PyTorch or OpenMMLab) on the
   same images, and prints its predictions and their parity with PyTorch;
   where the aarch64 emulation is set up (tools/setup_arm64_emulation.sh),
   also under emulated aarch64 against x86.

Data sets are generated under ``data/`` of the current directory when
missing, as the tiny configs expect them there. ``--quick`` runs every step
on small data sets (in ``--work-dir``) for one epoch each: a check that the
job runs end to end (the tests use it), not a demonstration that the
models learn.
"""
import argparse
import contextlib
import io
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import torch
from mmengine.config import Config
from mmpretrain import get_model

from edgeformer_mm.datasets.synthetic import (make_tiny_coco, make_tiny_shapes,
                                              make_tiny_voc)
from edgeformer_mm.deployment import (Arm64Emulation, EmulationUnavailable,
                                      compare_predictions, describe_comparison,
                                      init_reference_model,
                                      reference_prediction)
from edgeformer_mm.models import EdgeFormer
from edgeformer_mm.utils import build_runner, count_macs, count_parameters

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_CONFIG = osp.join(
    REPO, 'configs/mmpretrain/edgeformer/'
    'edgeformer-xs_1xb32_tiny-shapes.py')
TINY_DET_CONFIG = osp.join(REPO,
                           'configs/mmdet/ssdlite_edgeformer_xs_tiny-coco.py')
TINY_SEG_CONFIG = osp.join(
    REPO, 'configs/mmseg/deeplabv3_edgeformer_xs_tiny-voc.py')
# The emulated CPU: the RK3588's big core (ARMv8.2 with fp16 arithmetic).
ARM_CPU = 'cortex-a76'
# --quick: data set sizes (a few images a class / a few scenes) and runs.
QUICK_SHAPES = dict(num_train_per_class=8, num_val_per_class=2)
QUICK_SCENES = dict(num_train=8, num_val=4)
QUICK_LATENCY_RUNS = 2

# The official models' figures: parameters of the classifier and its MACs at
# 256x256, counted like count_macs does (the official code, random weights).
OFFICIAL = {
    'xs': (2_185_384, 944.0169e6),
    's': (5_037_088, 1657.3476e6),
    'h': (20_403_940, 8544.4187e6),
}


def print_figures(height: int, width: int):
    torch.manual_seed(0)
    print(f"{'arch':<5}{'params':>13}{'official':>13}"
          f"{'MACs@256':>12}{'official':>12}")
    for arch, (official_params, official_macs) in OFFICIAL.items():
        model = get_model(f'edgeformer-{arch}_8xb128_in1k')
        params = count_parameters(model)
        macs = count_macs(model, torch.rand(1, 3, 256, 256))
        print(f'{arch:<5}{params:>13,}{official_params:>13,}'
              f'{macs / 1e6:>11.1f}M{official_macs / 1e6:>11.1f}M')

    print(f'\nFeature shapes (C, H, W) at a {height}x{width} input:')
    inputs = torch.rand(1, 3, height, width)
    for arch in OFFICIAL:
        backbone = EdgeFormer(arch=arch, out_indices=range(7)).eval()
        with torch.no_grad():
            outs = backbone(inputs)
        print(f'  {arch}:')
        for name, out in zip(backbone.stage_names, outs):
            print(f'    {name:<13}{str(tuple(out.shape[1:])):>18}')


def tiny_config(config: str, work_dir: str, make_data, data_size: dict,
                quick: bool) -> Config:
    """Load a tiny config, generate its data set if missing and, with
    ``quick``, shorten the run to one epoch (validated and saved)."""
    cfg = Config.fromfile(config)
    data_root = cfg.val_dataloader.dataset.data_root
    if not osp.isdir(data_root):
        print(f'\nGenerating the tiny set in {data_root}')
        make_data(data_root, **(data_size if quick else {}))
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'  # the epoch lines still go to the log file
    if quick:
        cfg.train_cfg.update(max_epochs=1, val_interval=1)
        cfg.default_hooks.checkpoint.interval = 1
    return cfg


def last_checkpoint(cfg: Config) -> str:
    return osp.join(cfg.work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')


def train_tiny_classifier(work_dir: str, quick: bool) -> str:
    """Train EdgeFormer-XS on tiny shapes; return its last checkpoint."""
    cfg = tiny_config(TINY_CONFIG, work_dir, make_tiny_shapes, QUICK_SHAPES,
                      quick)
    runner = build_runner(cfg)
    print(f'\nTraining EdgeFormer-XS from scratch on '
          f'{cfg.val_dataloader.dataset.data_root} '
          f'({cfg.train_cfg.max_epochs} epochs; log in {work_dir})')
    untrained = runner.val()['accuracy/top1']
    runner.train()
    trained = runner.message_hub.get_scalar('val/accuracy/top1').current()
    print(f'  top-1 before training: {untrained:5.1f}%  (chance: 25%)')
    print(f'  top-1 after training:  {trained:5.1f}%  (EMA weights)')
    return last_checkpoint(cfg)


def train_from_classifier(title: str, config: str, make_data, work_dir: str,
                          backbone_checkpoint: str, metrics: dict,
                          quick: bool) -> str:
    """Train a tiny detector or segmentor whose backbone starts from the tiny
    classifier; print ``metrics`` (key: label) before and after training and
    return the last checkpoint."""
    cfg = tiny_config(config, work_dir, make_data, QUICK_SCENES, quick)
    cfg.model.backbone.init_cfg.checkpoint = backbone_checkpoint
    print(f'\nTraining {title} on {cfg.val_dataloader.dataset.data_root} '
          f'({cfg.train_cfg.max_epochs} epochs, backbone from '
          f'{backbone_checkpoint}; log in {work_dir})')
    # pycocotools prints its tables to stdout; the log file keeps them.
    with contextlib.redirect_stdout(io.StringIO()):
        runner = build_runner(cfg)
        untrained = runner.val()
        runner.train()
    trained = {
        key: runner.message_hub.get_scalar(f'val/{key}').current()
        for key in metrics
    }
    for name, values in (('before', untrained), ('after', trained)):
        figures = ', '.join(f'{label} {values[key]:.3g}'
                            for key, label in metrics.items())
        print(f'  {name + " training:":<17}{figures}')
    return last_checkpoint(cfg)


def run_script(script: str, *args: str, **kwargs):
    """Run one of the repository's scripts as a user does, echoing the
    command."""
    print(f'\n$ python {script} ' + ' '.join(args))
    return subprocess.run(
        [sys.executable, osp.join(REPO, script), *args], **kwargs)


def run_image_demo(image: str, model: str, checkpoint: str, out_file: str):
    run_script(
        'demo/image_demo.py',
        image,
        model,
        '--checkpoint',
        checkpoint,
        '--out-file',
        out_file,
        check=True)


def model_task(model_cfg: str) -> str:
    return {
        'mmpretrain': 'classification',
        'mmdet': 'detection',
        'mmseg': 'segmentation'
    }[Config.fromfile(model_cfg).default_scope]


def deploy_tiny_model(name: str, model_cfg: str, checkpoint: str, image: str,
                      size: int, work_dir: str, latency_runs: int) -> list:
    """Run tools/deploy.py for both backends with the static deploy configs
    of the model's task and ``size``; print the figures and return the
    bundle directories."""
    task = model_task(model_cfg)
    bundles = []
    for backend in ('onnxruntime', 'ncnn'):
        deploy_cfg = osp.join(REPO, 'configs', 'mmdeploy',
                              f'{task}_{backend}_static-{size}x{size}.py')
        out_dir = osp.join(work_dir, f'{name}_{backend}')
        result = run_script(
            'tools/deploy.py',
            model_cfg,
            checkpoint,
            deploy_cfg,
            image,
            '--work-dir',
            out_dir,
            '--threads',
            '1',
            '--latency-runs',
            str(latency_runs),
            capture_output=True,
            text=True)
        for line in result.stdout.splitlines():
            if line.startswith(('wrote', 'latency')) or ' vs PyTorch' in line:
                print('  ' + line)
        if result.returncode != 0:
            sys.exit(result.stderr[-3000:])
        bundles.append(out_dir)
    return bundles


def summarize(prediction: dict) -> str:
    """A line of the runtime's JSON prediction."""
    task = prediction['task']
    if task == 'classification':
        return (f'label {prediction["pred_label"]}, score '
                f'{prediction["pred_score"]:.4f}')
    if task == 'detection':
        detections = prediction['detections']
        best = (', best: label {label} score {score:.3f} at [{box}]'.format(
            box=', '.join(f'{v:.1f}' for v in detections[0]['bbox']),
            **detections[0]) if detections else '')
        return f'{len(detections)} detections{best}'
    return f'label map {prediction["shape"]} written to {prediction["out"]}'


def read_prediction(stdout: str) -> dict:
    """The runtime command's JSON prediction, with a segmentation's label
    map read back from its PNG."""
    prediction = json.loads(stdout)
    if prediction['task'] == 'segmentation':
        prediction['label_map'] = cv2.imread(prediction['out'],
                                             cv2.IMREAD_UNCHANGED)
    return prediction


def run_bundles(bundles: list,
                model_cfg: str,
                checkpoint: str,
                image: str,
                emulation=None):
    """Run each bundle with the ``edgeformer-run`` command on ``image`` and
    compare its prediction with PyTorch's (mmpretrain's, mmdet's or mmseg's
    inference API); with ``emulation``, also run it on emulated aarch64 and
    compare with x86."""
    task = model_task(model_cfg)
    reference = init_reference_model(task, Config.fromfile(model_cfg),
                                     checkpoint)
    with contextlib.redirect_stdout(io.StringIO()):
        expected = reference_prediction(task, reference, image)
    command = osp.join(osp.dirname(sys.executable), 'edgeformer-run')
    for bundle in bundles:
        out = (
            osp.join(bundle, 'label_map.png')
            if task == 'segmentation' else None)
        args = [bundle, image] + (['--out', out] if out else [])
        print(f'\n$ edgeformer-run {" ".join(args)}')
        result = subprocess.run([command, *args],
                                capture_output=True,
                                text=True)
        if result.returncode != 0:
            sys.exit(result.stderr[-3000:])
        prediction = read_prediction(result.stdout)
        print(f'  {summarize(prediction)}')
        figures = compare_predictions(expected, prediction)
        print(f'  edgeformer-run vs PyTorch: '
              f'{describe_comparison(task, figures)}')
        if not figures['passed']:
            sys.exit(f'{bundle}: the runtime differs from PyTorch')
        if emulation is not None:
            arm_out = out and out.replace('.png', '_aarch64.png')
            arm = read_prediction(
                emulation.runtime_cli(bundle, image, arm_out,
                                      cpu=ARM_CPU).stdout)
            figures = compare_predictions(prediction, arm)
            print(f'  emulated aarch64 ({ARM_CPU}) vs x86: '
                  f'{describe_comparison(task, figures)}')
            if not figures['passed']:
                sys.exit(f'{bundle}: aarch64 differs from x86')


def arm64_emulation():
    """The aarch64 emulation if it is set up (``make test`` sets it up, or
    tools/setup_arm64_emulation.sh), else None with a line saying why."""
    try:
        emulation = Arm64Emulation.paths()
    except EmulationUnavailable as error:
        print(f'(no emulated aarch64 run: {error})')
        return None
    if not emulation.is_ready():
        print('(no emulated aarch64 run: set it up once with '
              'bash tools/setup_arm64_emulation.sh)')
        return None
    return emulation


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=(224, 320),
        metavar=('H', 'W'),
        help='input size for the feature shapes')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/demo',
        help='where the training runs, pictures and deployed models go')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='every step on small data sets generated in --work-dir, one '
        'epoch each (checks that the job runs, not that the models learn)')
    args = parser.parse_args()

    work_dir = args.work_dir
    if args.quick:
        # The tiny configs read data/ of the current directory: run in the
        # work dir so that the small sets never replace the demo's own.
        os.makedirs(work_dir, exist_ok=True)
        os.chdir(work_dir)
        work_dir = '.'

    print_figures(*args.shape)
    checkpoint = train_tiny_classifier(
        osp.join(work_dir, 'edgeformer-xs_1xb32_tiny-shapes'), args.quick)
    classifier_image = 'data/tiny_shapes/val/triangle/triangle_0000.png'
    run_image_demo(classifier_image, TINY_CONFIG, checkpoint,
                   osp.join(work_dir, 'classification_demo.png'))

    detector = train_from_classifier(
        'SSDLite-EdgeFormer-XS', TINY_DET_CONFIG, make_tiny_coco,
        osp.join(work_dir, 'ssdlite_edgeformer_xs_tiny-coco'), checkpoint, {
            'coco/bbox_mAP': 'bbox mAP',
            'coco/bbox_mAP_50': 'mAP@0.5'
        }, args.quick)
    detector_image = 'data/tiny_coco/val/0000.png'
    run_image_demo(detector_image, TINY_DET_CONFIG, detector,
                   osp.join(work_dir, 'detection_demo.png'))

    segmentor = train_from_classifier(
        'DeepLabV3-EdgeFormer-XS', TINY_SEG_CONFIG, make_tiny_voc,
        osp.join(work_dir, 'deeplabv3_edgeformer_xs_tiny-voc'), checkpoint, {
            'mIoU': 'mIoU (%)',
            'aAcc': 'pixel accuracy (%)'
        }, args.quick)
    segmentor_image = 'data/tiny_voc/JPEGImages/val_0000.jpg'
    run_image_demo(segmentor_image, TINY_SEG_CONFIG, segmentor,
                   osp.join(work_dir, 'segmentation_demo.png'))

    print('\nDeploying the three models (parity with PyTorch, latency at 1 '
          'thread):')
    latency_runs = QUICK_LATENCY_RUNS if args.quick else 50
    models = [
        ('classifier', TINY_CONFIG, checkpoint, classifier_image, 64),
        ('detector', TINY_DET_CONFIG, detector, detector_image, 128),
        ('segmentor', TINY_SEG_CONFIG, segmentor, segmentor_image, 128),
    ]
    bundles = {
        name:
        deploy_tiny_model(name, config, trained, image, size,
                          osp.join(work_dir, 'deploy'), latency_runs)
        for name, config, trained, image, size in models
    }

    print('\nRunning the bundles without PyTorch (edgeformer-run), as on a '
          'device:')
    emulation = arm64_emulation()
    for name, config, trained, image, _ in models:
        run_bundles(bundles[name], config, trained, image, emulation)


if __name__ == '__main__':
    main()
