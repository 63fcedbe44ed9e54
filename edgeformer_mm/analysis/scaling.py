"""Training speed with 1 and more processes on this machine, side by side.

Each tiny config (:data:`SCALING_TASKS`) trains with one process
(tools/train.py) and with several (tools/dist_train.sh: torchrun, gloo on
a machine without GPUs), at the same per-process batch; the process counts
take turns in rounds (1, 2, 1, 2, ...) so that drift hits them alike. The
time of an iteration is mmengine's ``time`` in the run's scalars.json
(IterTimerHook: data loading, forward, backward, the gradients' all-reduce
and the optimizer step, on rank 0), logged for every iteration; a run's
figure is the median after the warm-up iterations, a setting's the median
over rounds of its runs' medians, its spread (max - min) / median of those.
"""
import glob
import json
import math
import os
import os.path as osp
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, NamedTuple, Sequence, Tuple

import mmengine
import torch
from mmengine.config import Config

from edgeformer_mm.analysis.benchmark import cpu_model
from edgeformer_mm.datasets.synthetic import (SHAPE_CLASSES, make_tiny_coco,
                                              make_tiny_shapes, make_tiny_voc)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class ScalingTask(NamedTuple):
    """A tiny config to time.

    Args:
        config (str): The config, from the repository's root.
        make_data (Callable): Writes the config's training set into a data
            folder (``data/`` of the configs) with at least the given number
            of images.
        cfg_options (tuple[str]): The config's own ``--cfg-options``.
    """
    config: str
    make_data: Callable[[str, int], None]
    cfg_options: Tuple[str, ...] = ()


# No validation sets: the runs only train.
def _make_shapes(data_dir: str, num_images: int):
    make_tiny_shapes(
        osp.join(data_dir, 'tiny_shapes'),
        num_train_per_class=math.ceil(num_images / len(SHAPE_CLASSES)),
        num_val_per_class=0)


def _make_coco(data_dir: str, num_images: int):
    make_tiny_coco(
        osp.join(data_dir, 'tiny_coco'), num_train=num_images, num_val=0)


def _make_voc(data_dir: str, num_images: int):
    make_tiny_voc(
        osp.join(data_dir, 'tiny_voc'), num_train=num_images, num_val=0)


# The detector and the segmentor start from random weights, not from the
# tiny classifier's checkpoint that their configs load.
SCALING_TASKS = {
    'classification':
    ScalingTask(
        'configs/mmpretrain/edgeformer/'
        'edgeformer-xs_1xb32_tiny-shapes.py', _make_shapes),
    'detection':
    ScalingTask('configs/mmdet/ssdlite_edgeformer_xs_tiny-coco.py', _make_coco,
                ('model.backbone.init_cfg=None', )),
    'segmentation':
    ScalingTask('configs/mmseg/deeplabv3_edgeformer_xs_tiny-voc.py', _make_voc,
                ('model.backbone.init_cfg=None', )),
}


def benchmark_cfg_options(num_iters: int) -> List[str]:
    """The ``--cfg-options`` of every run: ``num_iters`` iterations, each
    logged with its own time, no checkpoint."""
    return [
        # Exactly num_iters iterations, whatever the number of processes
        # (an epoch of each is shorter with more of them).
        'train_cfg._delete_=True',
        'train_cfg.type=IterBasedTrainLoop',
        f'train_cfg.max_iters={num_iters}',
        # Loading in the training processes: worker processes would take
        # cores from them, the more so the more processes train.
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        # mmengine logs the mean time of the last window_size iterations.
        'default_hooks.logger.interval=1',
        'log_processor.window_size=1',
        'default_hooks.checkpoint=None',
    ]


def train_batches(config: str) -> Tuple[int, int, bool]:
    """The per-process batches of a config's training.

    Args:
        config (str): The config, from the repository's root.

    Returns:
        tuple[int, int, bool]: The data loader's batch size; the largest
        batch of a step, before the variable batch sampler rounds it to a
        multiple of the number of processes; whether the batch varies (the
        variable batch sampler, whose batch size is that at the base crop
        size, with more images at smaller crops).
    """
    loader = Config.fromfile(osp.join(REPO, config)).train_dataloader
    sampler = loader.get('batch_sampler') or {}
    if sampler.get('type') != 'VariableBatchSampler':
        return loader.batch_size, loader.batch_size, False
    # At the smallest crop: as many pixels as the base batch.
    ratio = (sampler.base_crop_size / min(sampler.crop_sizes))**2
    return loader.batch_size, math.ceil(loader.batch_size * ratio), True


def threads_per_process(processes: int) -> int:
    """The torch threads of each process: the cores shared out, so that
    every setting uses the whole machine."""
    return max(1, (os.cpu_count() or 1) // processes)


def free_port() -> int:
    """A TCP port free now, for torchrun's rendezvous (the default one may
    be taken by another distributed run)."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def train_command(task: ScalingTask, processes: int, work_dir: str,
                  num_iters: int) -> Tuple[Dict[str, str], List[str]]:
    """The environment variables and the command of one training run.

    Args:
        task (ScalingTask): What to train.
        processes (int): 1: tools/train.py; more: tools/dist_train.sh.
        work_dir (str): The run's work dir.
        num_iters (int): Iterations to train.

    Returns:
        tuple[dict, list[str]]: The variables to set (``OMP_NUM_THREADS``
        from :func:`threads_per_process`; for several processes also the
        interpreter and a free rendezvous port) and the command.
    """
    config = osp.join(REPO, task.config)
    options = [
        '--work-dir', work_dir, '--no-validate', '--cfg-options',
        *benchmark_cfg_options(num_iters), *task.cfg_options
    ]
    env = dict(OMP_NUM_THREADS=str(threads_per_process(processes)))
    if processes == 1:
        return env, [
            sys.executable,
            osp.join(REPO, 'tools', 'train.py'), config, *options
        ]
    env.update(PYTHON=sys.executable, PORT=str(free_port()))
    return env, [
        'bash',
        osp.join(REPO, 'tools', 'dist_train.sh'), config,
        str(processes), *options
    ]


def shell_line(env: Dict[str, str], command: Sequence[str]) -> str:
    """``env`` and ``command`` as one shell command line."""
    return ' '.join([f'{k}={shlex.quote(v)}'
                     for k, v in env.items()] + [shlex.join(command)])


def read_iteration_times(scalars_json: str) -> List[Dict[str, float]]:
    """The ``time`` and ``data_time`` (s) of every training iteration in an
    mmengine scalars.json (one JSON object a line), in order.

    Raises:
        ValueError: If it lacks some iteration (logged at an interval > 1)
            or has none.
    """
    records = []
    with open(scalars_json) as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                if 'time' in record:
                    records.append(record)
    records.sort(key=lambda record: record['iter'])
    logged = [record['iter'] for record in records]
    if not logged or logged != list(range(1, len(logged) + 1)):
        raise ValueError(f'{scalars_json} must log every iteration from 1, '
                         f'logs {logged}')
    return [
        dict(time=record['time'], data_time=record['data_time'])
        for record in records
    ]


def run_medians(iterations: Sequence[Dict[str, float]],
                warmup: int) -> Dict[str, float]:
    """The median ``time`` and ``data_time`` of one run's iterations after
    the first ``warmup``."""
    timed = iterations[warmup:]
    if not timed:
        raise ValueError(f'no iteration after the {warmup} of warm-up '
                         f'(of {len(iterations)})')
    return {
        key: statistics.median(iteration[key] for iteration in timed)
        for key in ('time', 'data_time')
    }


def summarise(task_runs: Dict[str, dict]) -> None:
    """Add the figures of each process count to a task's runs, in place.

    Args:
        task_runs (dict): By process count (a string, the first one the
            reference of the ratios), ``processes``, ``batch_per_process``,
            ``round_times_s`` and ``round_data_times_s`` (the run medians of
            each round). Each gets ``time_s`` and ``data_time_s`` (medians
            over rounds), ``spread`` ((max - min) / median of the round
            times), ``images_per_iter`` (the batch of all processes),
            ``images_per_s``, and ``time_ratio`` and ``images_per_s_ratio``
            (to the reference's).
    """
    for run in task_runs.values():
        times = run['round_times_s']
        run['time_s'] = statistics.median(times)
        run['spread'] = (max(times) - min(times)) / run['time_s']
        run['data_time_s'] = statistics.median(run['round_data_times_s'])
        run['images_per_iter'] = run['batch_per_process'] * run['processes']
        run['images_per_s'] = run['images_per_iter'] / run['time_s']
    reference = next(iter(task_runs.values()))
    for run in task_runs.values():
        run['time_ratio'] = run['time_s'] / reference['time_s']
        run['images_per_s_ratio'] = (
            run['images_per_s'] / reference['images_per_s'])


def describe_machine() -> Dict[str, object]:
    """The CPU model, its core count and the versions of torch and
    mmengine."""
    return dict(
        cpu=cpu_model(),
        cores=os.cpu_count(),
        torch=torch.__version__,
        mmengine=mmengine.__version__)


def counted(count: int, singular: str, plural: str) -> str:
    """``count`` and the noun: '1 process', '2 processes'."""
    return f'{count} {singular if count == 1 else plural}'


def processes_name(processes: int) -> str:
    """'1 process', '2 processes', ..."""
    return counted(processes, 'process', 'processes')


def run_training(env: Dict[str, str], command: Sequence[str], cwd: str,
                 log_file: str) -> None:
    """Run one training, its output to ``log_file``.

    Raises:
        RuntimeError: If it fails, with the end of its output.
    """
    with open(log_file, 'w') as log:
        result = subprocess.run(
            command,
            env={
                **os.environ,
                **env
            },
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT)
    if result.returncode:
        with open(log_file) as log:
            tail = log.read()[-3000:]
        raise RuntimeError(f'{shell_line(env, command)} failed (exit '
                           f'{result.returncode}), in {cwd}:\n{tail}')


def time_run(task: ScalingTask, processes: int, work_dir: str, run_dir: str,
             warmup: int, num_iters: int) -> Tuple[str, float, dict]:
    """Train ``task`` with ``processes`` processes in ``work_dir`` (where
    its data lie), its work dir ``run_dir`` (made afresh, its output in
    console.log there), for ``warmup + num_iters`` iterations.

    Returns:
        tuple[str, float, dict]: The command line (from ``work_dir``); the
        seconds it ran (start-up, training, shut-down); and the medians of
        :func:`run_medians`.
    """
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    # The mmengine work dir, relative to where the run starts.
    mmengine_dir = osp.relpath(run_dir, work_dir)
    env, command = train_command(task, processes, mmengine_dir,
                                 warmup + num_iters)
    start = time.perf_counter()
    run_training(env, command, work_dir, osp.join(run_dir, 'console.log'))
    wall_s = time.perf_counter() - start
    # Rank 0 alone writes the scalars.
    scalars, = glob.glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json'))
    return (shell_line(env, command), wall_s,
            run_medians(read_iteration_times(scalars), warmup))


def run_scaling(work_dir: str, tasks: Sequence[str], processes: Sequence[int],
                num_iters: int, warmup: int, rounds: int,
                command: str) -> dict:
    """Time the training of ``tasks`` with each process count.

    Writes the data to ``work_dir/data`` (enough for ``warmup + num_iters``
    iterations with the most processes, so that no data loader restarts
    within a run) and each run to
    ``work_dir/runs/<task>/<processes>proc_round<r>`` (its mmengine work dir,
    and its output in console.log).

    Args:
        work_dir (str): Where everything goes; the runs start there.
        tasks (Sequence[str]): Names from :data:`SCALING_TASKS`.
        processes (Sequence[int]): The process counts, the first the
            reference of the ratios.
        num_iters (int): Timed iterations of a run.
        warmup (int): Iterations before them, not timed.
        rounds (int): Interleaved rounds.
        command (str): The benchmark's command line, for the report.

    Returns:
        dict: What scaling.json holds: ``machine``
        (:func:`describe_machine`), ``command``, ``settings``, ``wall_s``
        (the whole benchmark) and ``tasks``: by task, ``config``,
        ``variable_batch`` and ``runs``: by process count (a string),
        ``threads`` (per process), ``command`` (of round 1, from
        ``work_dir``), ``wall_s`` (of each round's run: start-up, training,
        shut-down) and :func:`summarise`'s figures.
    """
    start = time.perf_counter()
    total_iters = warmup + num_iters
    data_dir = osp.join(work_dir, 'data')
    shutil.rmtree(data_dir, ignore_errors=True)
    results = dict(
        machine=describe_machine(),
        command=command,
        settings=dict(
            processes=list(processes),
            iters=num_iters,
            warmup=warmup,
            rounds=rounds),
        tasks={})
    for name in tasks:
        task = SCALING_TASKS[name]
        batch, largest_batch, variable = train_batches(task.config)
        # Room for the variable batch sampler's rounding too.
        per_process = total_iters * (largest_batch + max(processes))
        task.make_data(data_dir, per_process * max(processes))
        results['tasks'][name] = dict(
            config=task.config,
            variable_batch=variable,
            runs={
                str(nproc):
                dict(
                    processes=nproc,
                    threads=threads_per_process(nproc),
                    batch_per_process=batch,
                    wall_s=[],
                    round_times_s=[],
                    round_data_times_s=[])
                for nproc in processes
            })
    for round_index in range(1, rounds + 1):
        for name in tasks:
            for nproc in processes:
                run = results['tasks'][name]['runs'][str(nproc)]
                run_dir = osp.join(work_dir, 'runs', name,
                                   f'{nproc}proc_round{round_index}')
                command, wall_s, medians = time_run(SCALING_TASKS[name], nproc,
                                                    work_dir, run_dir, warmup,
                                                    num_iters)
                run.setdefault('command', command)
                run['wall_s'].append(wall_s)
                run['round_times_s'].append(medians['time'])
                run['round_data_times_s'].append(medians['data_time'])
                print(f'round {round_index}/{rounds}, {name}, '
                      f'{processes_name(nproc)}: {medians["time"]:.3f} s '
                      f'per iteration ({wall_s:.0f} s in all)')
    for task in results['tasks'].values():
        summarise(task['runs'])
    results['wall_s'] = time.perf_counter() - start
    return results


def _row(cells: Sequence[object]) -> str:
    return '| ' + ' | '.join(map(str, cells)) + ' |'


def markdown_report(results: dict) -> str:
    """scaling.md: the machine, the command, how it is measured, the table
    of every task and process count, and the runs' commands.

    Args:
        results (dict): The results of :func:`run_scaling`.

    Returns:
        str: The markdown.
    """
    machine, settings = results['machine'], results['settings']
    reference = processes_name(settings['processes'][0])
    first_timed = settings['warmup'] + 1
    last_timed = settings['warmup'] + settings['iters']
    warmup = counted(settings['warmup'], 'warm-up iteration',
                     'warm-up iterations')
    lines = [
        '# Training speed by number of processes', '',
        f'Machine: {machine["cpu"]}, {machine["cores"]} cores; torch '
        f'{machine["torch"]}, mmengine {machine["mmengine"]}.', '',
        'Command (from the repository root):', '', f'    {results["command"]}',
        '', '- Runs: each tiny config trains with 1 process (tools/train.py) '
        'and with more (tools/dist_train.sh: torchrun, gloo without GPUs) '
        'at the same batch per process, from random weights, on generated '
        'data, without validation; the process counts take turns in '
        f'{counted(settings["rounds"], "round", "rounds")} so that drift '
        'hits them alike.',
        '- Threads: each process runs cores / processes torch threads '
        '(OMP_NUM_THREADS), so that every setting uses the whole machine. '
        'The training processes load their data themselves (no loader '
        'workers, which would compete for the cores).',
        '- Time / iteration: mmengine\'s `time` of each iteration on rank 0 '
        '(data loading, forward, backward, gradient all-reduce, optimizer '
        f'step), the median of iterations {first_timed} to {last_timed} of '
        f'a run (after {warmup}), then the median over rounds; spread: '
        '(max - min) / median of the round medians. '
        'Data: the part of it spent loading data.',
        '- Images / iteration: batch per process x processes.'
    ]
    for name, task in results['tasks'].items():
        if task['variable_batch']:
            lines[-1] += (
                f' {name}: the variable batch sampler takes more images at '
                'smaller crops, the figures count its base batch (at the '
                'base crop size): its images / s are a lower bound, its '
                'ratios hold (the runs draw the same crop sizes).')
    lines += [
        '',
        _row([
            'task', 'processes', 'threads / process', 'images / iteration',
            'time / iteration (s) (spread)', 'data (s)', 'images / s',
            f'time vs {reference}', f'images / s vs {reference}'
        ]), '|' + '---|' * 9
    ]
    for name, task in results['tasks'].items():
        for run in task['runs'].values():
            lines.append(
                _row([
                    name, run['processes'], run['threads'],
                    run['images_per_iter'],
                    f'{run["time_s"]:.3f} ({run["spread"]:.0%})',
                    f'{run["data_time_s"]:.3f}', f'{run["images_per_s"]:.1f}',
                    f'{run["time_ratio"]:.2f}',
                    f'{run["images_per_s_ratio"]:.2f}'
                ]))
    lines += [
        '', f'The whole benchmark took {results["wall_s"] / 60:.1f} min.', '',
        '## Runs', '',
        'The commands of round 1, run in the work dir (the data in its '
        'data/ folder); the later rounds differ in their work dir and port.',
        ''
    ]
    for name, task in results['tasks'].items():
        lines.append(f'- {name} (`{task["config"]}`):')
        for run in task['runs'].values():
            lines.append(f'  - {processes_name(run["processes"])}, '
                         f'{statistics.median(run["wall_s"]):.0f} s a run: '
                         f'`{run["command"]}`')
    return '\n'.join(lines) + '\n'


def write_report(results: dict, work_dir: str) -> str:
    """Write scaling.json and scaling.md to ``work_dir`` (which must exist).

    Returns:
        str: The markdown of scaling.md.
    """
    with open(osp.join(work_dir, 'scaling.json'), 'w') as f:
        json.dump(results, f, indent=1)
    report = markdown_report(results)
    with open(osp.join(work_dir, 'scaling.md'), 'w') as f:
        f.write(report)
    return report
