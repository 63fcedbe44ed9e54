"""MNN's own int8 (edgeformer_mm.deployment.mnn_int8) next to ours.

accuracy: the tiny sets with the models `make demo` trained. The fp32 ONNX
    Runtime bundles (--bundles, `{task}_onnxruntime`; made by
    tools/deploy.py into --work-dir when missing) give the ONNX graph
    mmdeploy exports and the pre/postprocessing; MNN converts it to fp32,
    quantizes it calibrated on --calib-num training images through the test
    pipeline (as tools/deploy.py --calib-dataset train), and each model is
    evaluated on the tiny test set from the image files (the runtime's
    preprocess, MNN, the runtime's postprocess).
speed: classifiers with calibrated random weights at --size, 1 thread, MNN
    fp32 and int8 (calibrated on scikit-image's calibration photos),
    interleaved: each round times every model once; the median of --rounds.
    Then MNN's per-operator profile of each (time by operator kind).

Example (from the directory holding the demo's data/):
    python tools/analysis/mnn_int8.py accuracy --demo-dir . \
        --bundles work_dirs/int8_accuracy
    python tools/analysis/mnn_int8.py speed
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

from mmengine.config import Config

from edgeformer_mm.deployment import convert_onnx_to_mnn
from edgeformer_mm.deployment.evaluate import evaluate_predictions
from edgeformer_mm.deployment.mnn_int8 import (MnnQuantizationError,
                                               mnn_profile, profile_summary,
                                               quantize_mnn)
from edgeformer_runtime import Bundle, postprocess, preprocess
from edgeformer_runtime.backends import MnnModule

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools', 'analysis'))
from int8_accuracy import TINY_MODELS  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('what', choices=['accuracy', 'speed'])
    parser.add_argument('--work-dir', default='work_dirs/mnn_int8')
    parser.add_argument('--demo-dir', default='work_dirs/demo')
    parser.add_argument('--bundles', help='fp32 onnxruntime bundles')
    parser.add_argument('--tasks', nargs='+', default=list(TINY_MODELS))
    parser.add_argument('--methods', nargs='+', default=['KL', 'EMA', 'ADMM'])
    parser.add_argument('--calib-num', type=int, default=100)
    parser.add_argument(
        '--models', nargs='+', default=['EdgeFormer-S', 'MobileViT-S'])
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--rounds', type=int, default=20)
    parser.add_argument('--profile-runs', type=int, default=10)
    return parser.parse_args()


def fp32_bundle(task: str, args) -> str:
    """The fp32 ONNX Runtime bundle of the demo's model of ``task``."""
    config, run, size, _, _ = TINY_MODELS[task]
    for root in (args.bundles, args.work_dir):
        if root and osp.isdir(osp.join(root, f'{task}_onnxruntime')):
            return osp.join(root, f'{task}_onnxruntime')
    run_dir = osp.join(args.demo_dir, run)
    with open(osp.join(run_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    if not osp.exists(checkpoint):
        checkpoint = osp.join(run_dir, osp.basename(checkpoint))
    work_dir = osp.join(args.work_dir, f'{task}_onnxruntime')
    deploy_cfg = osp.join(REPO, 'configs', 'mmdeploy',
                          f'{task}_onnxruntime_static-{size}x{size}.py')
    from edgeformer_mm.analysis.photos import TEST_PHOTOS, copy_photos
    image = copy_photos(TEST_PHOTOS[:1], osp.join(args.work_dir, 'photo'))[0]
    subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'deploy.py'),
        osp.join(REPO, config), checkpoint, deploy_cfg, image, '--work-dir',
        work_dir
    ],
                   check=False,
                   capture_output=True)
    return work_dir


def mnn_predictor(bundle: Bundle, model_file: str):
    """A function from an image file to the runtime's prediction, with the
    bundle's pre/postprocessing around an MNN model."""
    module = MnnModule(model_file, bundle.input_name, bundle.outputs, 1)
    finish = postprocess.TASKS[bundle.task]

    def predict(image):
        state = preprocess(image, bundle.preprocess)
        outputs = dict(zip(bundle.outputs, module(state.input[None])))
        return finish(outputs, state, bundle.postprocess)

    return predict


def accuracy(args):
    from edgeformer_mm.deployment import dataset_inputs
    rows = []
    for task in args.tasks:
        config, _, size, metric, title = TINY_MODELS[task]
        cfg = Config.fromfile(osp.join(REPO, config))
        bundle = Bundle.load(fp32_bundle(task, args))
        out = osp.join(args.work_dir, task)
        os.makedirs(out, exist_ok=True)
        fp32 = osp.join(out, 'fp32.mnn')
        convert_onnx_to_mnn(bundle.model_file('model'), fp32)
        models = {'MNN fp32': fp32}
        inputs = dataset_inputs(cfg, 'train', args.calib_num, (size, size))
        reports = {}
        for method in args.methods:
            start = time.time()
            try:
                report = quantize_mnn(fp32, osp.join(out,
                                                     f'int8_{method}.mnn'),
                                      inputs, method)
            except MnnQuantizationError as error:
                print(f'{task} {method}: {str(error)[:200]} ...',
                      str(error)[-300:])
                reports[method] = 'failed'
                continue
            models[f'MNN int8 {method}'] = osp.join(out, f'int8_{method}.mnn')
            reports[method] = {
                k: report[k]
                for k in ('method_used', 'calibration_used', 'int8_layers',
                          'layers', 'int8_macs', 'macs', 'fp32_bytes',
                          'int8_bytes')
            }
            reports[method]['seconds'] = round(time.time() - start, 1)
        scale = 100 if task == 'detection' else 1
        figures = {}
        for name, path in models.items():
            values = evaluate_predictions(cfg, mnn_predictor(bundle, path))
            figures[name] = scale * float(values[metric])
        print(task, json.dumps(figures), json.dumps(reports), flush=True)
        rows.append((task, title, figures))
    columns = list(dict.fromkeys(c for row in rows for c in row[2]))
    lines = [
        f'| task | metric | {" | ".join(columns)} |',
        '|---|---|' + '---|' * len(columns)
    ]
    lines += [
        f'| {task} | {title} | ' +
        ' | '.join(f'{figures[c]:.1f}' if c in figures else 'failed'
                   for c in columns) + ' |' for task, title, figures in rows
    ]
    print('\n'.join(lines))


def speed(args):
    import torch
    from mmpretrain import get_model

    from edgeformer_mm.analysis import BENCHMARK_MODELS
    from edgeformer_mm.analysis.benchmark import (calibration_inputs,
                                                  convert_classifier)
    from edgeformer_mm.analysis.int8 import calibrated_random_weights
    size = (args.size, args.size)
    inputs = calibration_inputs(size)
    os.makedirs(args.work_dir, exist_ok=True)
    files, runners = {}, {}
    for name in args.models:
        torch.manual_seed(0)
        model = calibrated_random_weights(get_model(BENCHMARK_MODELS[name]))
        (onnx_file, ), _ = convert_classifier(name, model, 'onnxruntime', size,
                                              args.work_dir)
        fp32 = onnx_file[:-len('.onnx')] + '.mnn'
        int8 = onnx_file[:-len('.onnx')] + '.int8.mnn'
        convert_onnx_to_mnn(onnx_file, fp32)
        for method in args.methods:  # the first that MNN manages
            try:
                report = quantize_mnn(fp32, int8, inputs, method)
                break
            except MnnQuantizationError as error:
                print(f'{name} {method}: {str(error)[-300:]}')
        print(
            name,
            method,
            'int8 layers',
            report['int8_layers'],
            '/',
            report['layers'],
            'int8 MACs',
            f'{report["int8_macs"] / report["macs"]:.3f}',
            'bytes',
            report['fp32_bytes'],
            '->',
            report['int8_bytes'],
            flush=True)
        for precision, path in (('fp32', fp32), ('int8', int8)):
            files[name, precision] = path
            runners[name, precision] = MnnModule(path, 'input', ['output'], 1)
    x = inputs[0]
    for run in runners.values():
        for _ in range(3):
            run(x)
    times = {key: [] for key in runners}
    for _ in range(args.rounds):
        for key, run in runners.items():
            start = time.perf_counter()
            run(x)
            times[key].append(1000 * (time.perf_counter() - start))
    ms = {key: statistics.median(values) for key, values in times.items()}
    for key, value in ms.items():
        print(f'{key[0]:14s} {key[1]}: {value:7.2f} ms (min '
              f'{min(times[key]):.2f}, max {max(times[key]):.2f})')
    least = {key: min(values) for key, values in times.items()}
    ef, mv = args.models[:2]
    for precision in ('fp32', 'int8'):
        print(f'{ef} / {mv} {precision}: '
              f'{ms[ef, precision] / ms[mv, precision]:.3f} (medians), '
              f'{least[ef, precision] / least[mv, precision]:.3f} (minima)')
    for name in args.models:
        print(f'{name} int8 / fp32: '
              f'{ms[name, "int8"] / ms[name, "fp32"]:.3f} (medians), '
              f'{least[name, "int8"] / least[name, "fp32"]:.3f} (minima)')
    for key, path in files.items():
        print(f'\n{key[0]} {key[1]}: MNN per-operator profile (least of '
              f'{args.profile_runs} runs)')
        records = mnn_profile(path, x, runs=args.profile_runs)
        print(f'  {"all":32s} {len(records):4d} ops '
              f'{sum(r["min_ms"] for r in records):7.2f} ms')
        for kind, value in profile_summary(records).items():
            if value['min_ms'] >= 0.05:
                print(f'  {kind:32s} {value["count"]:4d} ops '
                      f'{value["macs"] / 1e6:8.1f} MMACs '
                      f'{value["min_ms"]:7.2f} ms')


def main():
    args = parse_args()
    (accuracy if args.what == 'accuracy' else speed)(args)


if __name__ == '__main__':
    main()
