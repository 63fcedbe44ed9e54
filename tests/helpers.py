"""Helpers shared by the tests: short Runner schedules, running the
repository's scripts as a user does or calling their ``main`` in-process,
calibrated random models and photos for parity checks, and a direct
reference of the circular convolution."""
import functools
import importlib.util
import os.path as osp
import subprocess
import sys

import cv2
import torch

# Random weights that behave like trained ones (BN statistics calibrated).
from edgeformer_mm.analysis.int8 import \
    calibrated_random_weights as calibrate  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def shorten_to_one_epoch(cfg, work_dir):
    """One epoch, logged and checkpointed, with a 2-iteration warm-up."""
    cfg.train_cfg.update(max_epochs=1, val_interval=1)
    cfg.param_scheduler = [
        dict(
            type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)
    ]
    cfg.default_hooks.update(
        logger=dict(type='LoggerHook', interval=1),
        checkpoint=dict(type='CheckpointHook', interval=1))
    cfg.work_dir = str(work_dir)


def run_script(script, *args, cwd=REPO):
    """Run a script of the repository (e.g. 'tools/train.py') with ``args``
    in ``cwd``; the finished process, output captured as text."""
    return subprocess.run(
        [sys.executable,
         osp.join(REPO, script), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd)


@functools.lru_cache(maxsize=None)
def load_script(script):
    """The module of a script of the repository (e.g. 'tools/deploy.py'),
    imported from its path once."""
    name = osp.splitext(script)[0].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(script, *args):
    """Call the ``main`` of a script of the repository in this process, as
    ``python script args`` would: its errors are raised here (``sys.exit``
    with a message as ``SystemExit``), without the start of a fresh
    interpreter."""
    return load_script(script).main(list(map(str, args)))


def run_image_demo(image, config, checkpoint, out_file, *options):
    """Run demo/image_demo.py as a user does; return its stdout after
    checking that it succeeded and drew a picture enlarged to 320 pixels
    (the tiny sets' images are smaller)."""
    demo = run_script(
        'demo/image_demo.py',
        image,
        config,
        '--checkpoint',
        checkpoint,
        '--out-file',
        out_file,
        *options,
        cwd=osp.dirname(str(out_file)))
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert cv2.imread(str(out_file)).shape == (320, 320, 3)
    return demo.stdout


def write_photo(name, path):
    """Write scikit-image's photo ``name`` (e.g. 'coffee') to ``path``."""
    from skimage import data
    cv2.imwrite(str(path), getattr(data, name)()[..., ::-1])
    return str(path)


def roll_reference(x, kernel, dim):
    """y[i] = sum_j k[j] x[(i + j) mod n]: shift x left by j and weight it."""
    n = x.shape[dim]
    shape = [1, -1, 1, 1]
    y = torch.zeros_like(x)
    for j in range(n):
        k = kernel[:, j].reshape(shape)
        y += k * torch.roll(x, shifts=-j, dims=dim)
    return y
