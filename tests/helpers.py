"""Helpers shared by the tests: short Runner schedules, running the
repository's scripts as a user does or calling their ``main`` in-process,
calibrated random models and photos for parity checks, a direct reference
of the circular convolution, and a watch on what third-party code does
(network connections, programs started)."""
import functools
import importlib.util
import json
import os.path as osp
import shutil
import subprocess
import sys
import textwrap

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


# Run in a child process after its imports: Python-level events (audit
# hooks) and, with strace, the system calls of the process and all its
# children from the marker on (a chdir to the marker directory).
AUDITED = textwrap.dedent('''
    import json, os, sys
    {setup}
    os.chdir({marker!r})
    events = []
    WATCHED = ('socket.connect', 'socket.sendto', 'subprocess.Popen',
               'os.system', 'os.exec', 'os.posix_spawn', 'os.fork')
    sys.addaudithook(lambda event, args: event in WATCHED and events.append(
        [event, repr(args)[:200]]))
    {code}
    print('AUDIT ' + json.dumps({{
        'events': events,
        'imported': [name for name, module in sys.modules.items()
                     if module is not None]}}))
''')


def audited_run(code: str, tmp_path, setup: str = '') -> dict:
    """Run ``code`` in a child Python after ``setup`` (imports) and report
    what it did: audit events, the network connections and programs strace
    saw (where strace is installed), the modules imported."""
    script = tmp_path / 'audited.py'
    marker = tmp_path / 'audit-from-here'
    marker.mkdir()
    script.write_text(
        AUDITED.format(
            setup=setup, marker=str(marker), code=textwrap.dedent(code)))
    command = [sys.executable, str(script)]
    trace = tmp_path / 'strace.log'
    strace = shutil.which('strace')
    if strace:
        command = [
            strace, '-f', '-qq', '-e', 'trace=connect,sendto,execve,chdir',
            '-o',
            str(trace)
        ] + command
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    line = [x for x in result.stdout.splitlines() if x.startswith('AUDIT ')]
    report = json.loads(line[-1][len('AUDIT '):])
    report['traced'] = bool(strace)
    if strace:
        calls = trace.read_text().splitlines()
        start = [i for i, call in enumerate(calls) if str(marker) in call]
        calls = calls[start[0]:]
        report['connections'] = [
            call for call in calls
            if 'connect(' in call and ('AF_INET' in call or 'AF_INET6' in call)
        ]
        report['programs'] = [call for call in calls if 'execve(' in call]
    return report
