"""tools/dist_train.sh, dist_test.sh and slurm_train.sh run as users run
them, with 2 CPU processes over gloo, and runs killed and resumed.

Every run uses a short version of a tiny config with a probe
(``tests/dist_probe.py``) that records what each rank trained on and its
final weights, and can stop a run at an iteration for the test to kill it.
"""
import json
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import torch
from helpers import REPO

from edgeformer_mm.analysis.scaling import free_port
from edgeformer_mm.datasets.synthetic import (make_tiny_coco, make_tiny_shapes,
                                              make_tiny_voc)

pytestmark = pytest.mark.slow

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = dict(
    classification='configs/mmpretrain/edgeformer/'
    'edgeformer-xs_1xb32_tiny-shapes.py',
    detection='configs/mmdet/ssdlite_edgeformer_xs_tiny-coco.py',
    segmentation='configs/mmseg/deeplabv3_edgeformer_xs_tiny-voc.py')
METRICS = dict(
    classification='accuracy/top1',
    detection='coco/bbox_mAP',
    segmentation='mIoU')
TRAIN_IMAGES = dict(
    classification='data/tiny_shapes/train',
    detection='data/tiny_coco/train',
    segmentation='data/tiny_voc/JPEGImages')
# Two epochs, a checkpoint after each (both kept), no workers, the probe;
# the classifier's variable batch sampler at 24-40 px.
SHORT = '''
_base_ = [{config!r}]
custom_imports = dict(imports=['dist_probe'], allow_failed_imports=False)
custom_hooks = _base_.custom_hooks + [dict(type='ProbeHook')]
train_cfg = dict(max_epochs=2, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2))
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False{train_extra})
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = dict(num_workers=0, persistent_workers=False)
{model_extra}
'''
EXTRA = dict(
    classification=dict(
        train_extra=', batch_sampler=dict(crop_sizes=(24, 32, 40), '
        'base_crop_size=32)',
        model_extra=''),
    # The tiny detector and segmentor start from the tiny classifier.
    detection=dict(
        train_extra='',
        model_extra='model = dict(backbone=dict(init_cfg=None))'),
    segmentation=dict(
        train_extra='',
        model_extra='model = dict(backbone=dict(init_cfg=None))'))
TIMEOUT = 600


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """A folder with small tiny data sets (64 training images for the
    classifier, 32 for the others) and the short configs."""
    root = tmp_path_factory.mktemp('dist')
    make_tiny_shapes(
        str(root / 'data/tiny_shapes'),
        num_train_per_class=16,
        num_val_per_class=4,
        image_size=32)
    make_tiny_coco(str(root / 'data/tiny_coco'), 32, 8, image_size=64)
    make_tiny_voc(str(root / 'data/tiny_voc'), 32, 8, image_size=64)
    for task, config in CONFIGS.items():
        (root / f'{task}.py').write_text(
            SHORT.format(config=osp.join(REPO, config), **EXTRA[task]))
    return root


def environment(**extra) -> dict:
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        **{
            name: str(value)
            for name, value in extra.items()
        })
    env['PYTHONPATH'] = os.pathsep.join([TESTS, env.get('PYTHONPATH', '')])
    env.setdefault('PORT', str(free_port()))
    return env


def start(command, cwd, **env) -> subprocess.Popen:
    return subprocess.Popen(
        list(map(str, command)),
        cwd=cwd,
        env=environment(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True)


def run(command, cwd, **env) -> str:
    """Run to the end; its output, which must report success."""
    process = start(command, cwd, **env)
    output, _ = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, output[-4000:]
    return output


def dist_train(task, work_dir, *options, nproc=2):
    return [
        'bash',
        osp.join(REPO, 'tools/dist_train.sh'), f'{task}.py', nproc,
        '--work-dir', work_dir, '--deterministic', *options
    ]


def train(task, work_dir, *options):
    return [
        sys.executable,
        osp.join(REPO, 'tools/train.py'), f'{task}.py', '--work-dir', work_dir,
        '--deterministic', *options
    ]


def metric(task, output) -> float:
    values = re.findall(rf'{re.escape(METRICS[task])}: ([\d.]+)', output)
    assert values, output[-4000:]
    return float(values[-1])


def probe(work_dir, rank=0) -> dict:
    with open(osp.join(work_dir, 'probe', f'rank{rank}.json')) as f:
        return json.load(f)


def weights(checkpoint):
    """The model's and the EMA model's tensors of a checkpoint."""
    state = torch.load(checkpoint, map_location='cpu')
    return {
        **state['state_dict'],
        **{
            f'ema.{key}': value
            for key, value in state['ema_state_dict'].items()
        }
    }


def assert_bitwise_equal(checkpoint, reference):
    ours, theirs = weights(checkpoint), weights(reference)
    assert ours.keys() == theirs.keys()
    different = [
        key for key in ours if not torch.equal(ours[key], theirs[key])
    ]
    assert not different, f'{len(different)} tensors differ: {different[:5]}'


@pytest.fixture(scope='module')
def dist_trained(workspace):
    """A function from a task to the work dir of its 2-process run (run
    once) and the run's output."""
    runs = {}

    def trained(task):
        if task not in runs:
            work_dir = workspace / f'dist-{task}'
            output = run(dist_train(task, work_dir), workspace)
            runs[task] = work_dir, output
        return runs[task]

    return trained


@pytest.mark.parametrize('task', list(CONFIGS))
def test_two_processes_train_test_and_resume_alone(task, workspace,
                                                   dist_trained):
    work_dir, output = dist_trained(task)
    assert 'No GPU: the 2 processes communicate over gloo on CPU' in output
    if task == 'segmentation':  # the VOC config's SyncBN
        assert 'torch has no SyncBN on CPU' in output
        assert 'SyncBN layers reverted to BN' in output
    if task == 'detection':  # the COCO config's sync_bn
        assert 'cfg.sync_bn ignored' in output
    ranks = [probe(work_dir, rank) for rank in (0, 1)]
    assert ranks[0]['parameters'] == ranks[1]['parameters']

    # Each epoch, every training image goes to exactly one rank, and both
    # ranks take the same number of steps of one size each.
    folder = TRAIN_IMAGES[task]
    images = sorted(
        osp.relpath(osp.join(parent, name), workspace)
        for parent, _, names in os.walk(workspace / folder) for name in names)
    if task == 'segmentation':  # the train split of the shared images
        with open(workspace / 'data/tiny_voc/ImageSets/Segmentation/'
                  'train.txt') as f:
            images = sorted(f'{folder}/{name}.jpg'
                            for name in f.read().split())
    for epoch in (0, 1):
        steps = [[step for step in rank['steps'] if step['epoch'] == epoch]
                 for rank in ranks]
        assert len(steps[0]) == len(steps[1]) > 0
        # The configs' data roots are relative to the working directory.
        seen = Counter(
            osp.normpath(path) for rank in steps for step in rank
            for path in step['images'])
        assert sorted(seen) == images
        assert set(seen.values()) == {1}
        if task == 'classification':
            for ours, theirs in zip(*steps):
                assert len(ours['sizes']) == 1
                assert ours['sizes'] == theirs['sizes']
    if task == 'classification':  # the sampler really varies the size
        sizes = {
            tuple(step['sizes'][0])
            for rank in ranks
            for step in rank['steps']
        }
        assert len(sizes) > 1

    # Metrics gathered over 2 processes are those of 1 process.
    checkpoint = work_dir / 'epoch_2.pth'
    both = run([
        'bash',
        osp.join(REPO, 'tools/dist_test.sh'), f'{task}.py', checkpoint, 2,
        '--work-dir', workspace / f'dist-test-{task}'
    ], workspace)
    alone = run([
        sys.executable,
        osp.join(REPO, 'tools/test.py'), f'{task}.py', checkpoint,
        '--work-dir', workspace / f'test-{task}'
    ], workspace)
    assert metric(task, both) == metric(task, alone)

    # The checkpoint resumes in a single process.
    resumed = run(
        train(task, workspace / f'resumed-{task}', '--resume', checkpoint,
              '--cfg-options', 'train_cfg.max_epochs=3'), workspace)
    assert 'resumed epoch: 2' in resumed
    assert osp.isfile(workspace / f'resumed-{task}' / 'epoch_3.pth')


def test_dist_test_refuses_another_models_checkpoint(workspace, dist_trained):
    """One line before the processes start, not one error per rank."""
    checkpoint = dist_trained('classification')[0] / 'epoch_2.pth'
    process = start([
        'bash',
        osp.join(REPO, 'tools/dist_test.sh'), 'detection.py', checkpoint, 2
    ], workspace)
    output, _ = process.communicate(timeout=TIMEOUT)
    assert process.returncode != 0
    assert output.strip().splitlines()[-1].startswith(
        f'error: {checkpoint} does not fit the model of the config: ')
    assert 'torch.distributed' not in output


def test_two_nodes_on_one_machine(workspace):
    """Two torchrun launchers, one process each, one rendezvous on the
    loopback address."""
    work_dir = workspace / 'two-nodes'
    nodes = dict(NNODES='2', MASTER_ADDR='127.0.0.1', PORT=str(free_port()))
    command = dist_train(
        'classification',
        work_dir,
        '--cfg-options',
        'train_cfg.max_epochs=1',
        nproc=1)
    launchers = [
        start(command, workspace, NODE_RANK=str(rank), **nodes)
        for rank in (0, 1)
    ]
    outputs = [
        launcher.communicate(timeout=TIMEOUT)[0] for launcher in launchers
    ]
    for launcher, output in zip(launchers, outputs):
        assert launcher.returncode == 0, output[-4000:]
    assert 'the 2 processes communicate over gloo' in outputs[0]
    assert probe(work_dir, 0)['parameters'] == probe(work_dir, 1)['parameters']
    assert osp.isfile(work_dir / 'epoch_1.pth')


@pytest.fixture(scope='module')
def single_trained(workspace):
    """A function from a task to the work dir of its 1-process run."""
    runs = {}

    def trained(task):
        if task not in runs:
            work_dir = workspace / f'single-{task}'
            run(train(task, work_dir), workspace)
            runs[task] = work_dir
        return runs[task]

    return trained


@pytest.mark.parametrize('task', ['classification', 'detection'])
@pytest.mark.parametrize('processes', [2, 1])
def test_killed_run_resumes_bitwise(task, processes, workspace, dist_trained,
                                    single_trained):
    """SIGKILL after the first checkpoint (to one of two ranks, or to the
    only process), then --resume: the final weights and EMA weights are
    bitwise those of the run never killed."""
    if processes == 2:
        reference, _ = dist_trained(task)
    else:
        reference = single_trained(task)
    epoch_1_steps = sum(step['epoch'] == 0
                        for step in probe(reference)['steps'])
    work_dir = workspace / f'killed-{task}-{processes}'
    if processes == 2:
        command = dist_train(task, work_dir)
    else:
        command = train(task, work_dir)
    process = start(command, workspace, PROBE_STOP_AT_ITER=epoch_1_steps)
    # Rank 0 reaches epoch 2 once it has saved epoch 1's checkpoint; the
    # others do not wait for that.
    stopped = [
        work_dir / 'probe' / f'stopped_rank{rank}' for rank in range(processes)
    ]
    deadline = time.monotonic() + TIMEOUT
    while not all(path.exists() and path.read_text() for path in stopped):
        assert process.poll() is None, process.stdout.read()[-4000:]
        assert time.monotonic() < deadline
        time.sleep(0.5)
    victim = stopped[-1]  # rank 1 of 2, or the only process
    os.kill(int(victim.read_text()), signal.SIGKILL)
    output, _ = process.communicate(timeout=TIMEOUT)
    assert process.returncode != 0, output[-4000:]
    assert osp.isfile(work_dir / 'epoch_1.pth')
    assert not osp.exists(work_dir / 'epoch_2.pth')

    resumed = run(command + ['--resume'], workspace)
    assert 'resumed epoch: 1' in resumed
    assert_bitwise_equal(work_dir / 'epoch_2.pth', reference / 'epoch_2.pth')


def test_cut_off_checkpoint_falls_back_to_the_complete_one(
        workspace, single_trained):
    work_dir = workspace / 'cut-off'
    shutil.copytree(single_trained('classification'), work_dir)
    last = work_dir / 'epoch_2.pth'
    (work_dir / 'last_checkpoint').write_text(str(last))  # the copy's
    data = last.read_bytes()
    last.write_bytes(data[:len(data) // 2])

    # Given by name: refused, the complete one offered.
    refused = start(
        train('classification', work_dir, '--resume', last), workspace)
    output, _ = refused.communicate(timeout=TIMEOUT)
    assert refused.returncode != 0
    assert f'error: cannot resume: {last} is cut off' in output
    assert f'resume with --resume {work_dir / "epoch_1.pth"}' in output

    # Found through last_checkpoint: the complete one, with a warning.
    resumed = run(
        train('classification', work_dir, '--resume', '--cfg-options',
              'train_cfg.max_epochs=3'), workspace)
    assert f'{work_dir}/last_checkpoint names {last} is cut off' in resumed
    assert ('resuming from the newest complete checkpoint, '
            f'{work_dir / "epoch_1.pth"}') in resumed
    assert 'resumed epoch: 1' in resumed
    assert osp.isfile(work_dir / 'epoch_3.pth')


def test_slurm_train_command_line(workspace, tmp_path):
    """A stub srun records its command line and runs the tasks with the
    variables Slurm sets: the job trains over gloo."""
    stub = tmp_path / 'bin' / 'srun'
    stub.parent.mkdir()
    stub.write_text(
        SRUN_STUB.format(
            python=sys.executable, log=str(tmp_path / 'srun.json')))
    stub.chmod(0o755)
    work_dir = workspace / 'slurm'
    output = run([
        'bash',
        osp.join(REPO, 'tools/slurm_train.sh'), 'cpu-partition', 'edgeformer',
        'classification.py', work_dir, '--deterministic', '--cfg-options',
        'train_cfg.max_epochs=1'
    ],
                 workspace,
                 GPUS='2',
                 GPUS_PER_NODE='2',
                 CPUS_PER_TASK='1',
                 SRUN_ARGS='--time=10 --quiet',
                 PATH=f'{stub.parent}{os.pathsep}{os.environ["PATH"]}',
                 MASTER_ADDR='127.0.0.1')
    with open(tmp_path / 'srun.json') as f:
        argv = json.load(f)
    assert argv == [
        '-p', 'cpu-partition', '--job-name=edgeformer', '--gres=gpu:2',
        '--ntasks=2', '--ntasks-per-node=2', '--cpus-per-task=1',
        '--kill-on-bad-exit=1', '--time=10', '--quiet', sys.executable, '-u',
        osp.join(REPO, 'tools', 'train.py'), 'classification.py',
        f'--work-dir={work_dir}', '--launcher', 'slurm', '--deterministic',
        '--cfg-options', 'train_cfg.max_epochs=1'
    ]
    assert 'the 2 processes communicate over gloo' in output
    assert osp.isfile(work_dir / 'epoch_1.pth')


# Records the options, then starts the --ntasks tasks as srun would on one
# node, with the variables mmengine's slurm launcher reads.
SRUN_STUB = '''#!{python}
import json, os, subprocess, sys
args = sys.argv[1:]
with open({log!r}, 'w') as f:
    json.dump(args, f)
tasks = int(next(a for a in args if a.startswith('--ntasks=')).split('=')[1])
command = args[args.index({python!r}):]
processes = [
    subprocess.Popen(command, env=dict(
        os.environ, SLURM_PROCID=str(i), SLURM_LOCALID=str(i),
        SLURM_NTASKS=str(tasks), SLURM_NODELIST='localhost',
        MASTER_PORT=os.environ['PORT']))
    for i in range(tasks)]
sys.exit(max(p.wait() for p in processes))
'''
