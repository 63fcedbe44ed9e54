"""The scaling benchmark (tools/analysis/dist_scaling.py): its parsing of
mmengine's scalars.json, its summary and report on hand-written figures,
the commands of its runs, and one quick run of the classifier with 1 and
2 processes (the figures themselves are not checked: timings belong to the
benchmark, not to tests)."""
import json
import os.path as osp

import pytest
from helpers import REPO, run_script

from edgeformer_mm.analysis.scaling import (SCALING_TASKS, markdown_report,
                                            read_iteration_times, run_medians,
                                            summarise, train_batches,
                                            train_command)

# Lines as mmengine's LocalVisBackend writes them, not in order, with a
# line that is no training iteration.
SCALARS = [
    dict(lr=2e-4, data_time=0.5, loss=1.4, time=9.0, epoch=1, iter=1, step=1),
    dict(lr=3e-4, data_time=0.03, loss=1.3, time=0.6, epoch=1, iter=3, step=3),
    dict(lr=2e-4, data_time=0.02, loss=1.4, time=4.0, epoch=1, iter=2, step=2),
    dict(lr=3e-4, data_time=0.01, loss=1.3, time=0.4, epoch=1, iter=4, step=4),
    dict(lr=3e-4, data_time=0.05, loss=1.2, time=0.5, epoch=1, iter=5, step=5),
    {
        'accuracy/top1': 25.0,
        'step': 5
    },
]


def write_scalars(path, records):
    path.write_text(''.join(json.dumps(record) + '\n' for record in records))
    return str(path)


def test_reads_the_times_of_every_iteration_in_order(tmp_path):
    times = read_iteration_times(
        write_scalars(tmp_path / 'scalars.json', SCALARS))
    assert [t['time'] for t in times] == [9.0, 4.0, 0.6, 0.4, 0.5]
    assert [t['data_time'] for t in times] == [0.5, 0.02, 0.03, 0.01, 0.05]


@pytest.mark.parametrize('iters', [[10, 20], [2, 3], []])
def test_refuses_logs_without_every_iteration(tmp_path, iters):
    records = [dict(time=1.0, data_time=0.1, iter=i) for i in iters]
    with pytest.raises(ValueError, match='every iteration'):
        read_iteration_times(write_scalars(tmp_path / 'scalars.json', records))


def test_medians_leave_the_warm_up_out(tmp_path):
    times = read_iteration_times(
        write_scalars(tmp_path / 'scalars.json', SCALARS))
    assert run_medians(times, warmup=2) == dict(time=0.5, data_time=0.03)
    assert run_medians(
        times, warmup=3) == pytest.approx(dict(time=0.45, data_time=0.03))
    with pytest.raises(ValueError, match='no iteration after'):
        run_medians(times, warmup=5)


def hand_made_results():
    """Results of run_scaling as far as summarise goes: 3 rounds of a task
    with 1 and 2 processes."""
    return dict(
        machine=dict(cpu='Test CPU', cores=2, torch='2.x', mmengine='0.x'),
        command='python tools/analysis/dist_scaling.py --work-dir w',
        settings=dict(processes=[1, 2], iters=30, warmup=5, rounds=3),
        wall_s=600.0,
        tasks=dict(
            classification=dict(
                config='configs/mmpretrain/a.py',
                variable_batch=True,
                runs={
                    '1':
                    dict(
                        processes=1,
                        threads=2,
                        batch_per_process=32,
                        command='OMP_NUM_THREADS=2 python tools/train.py a',
                        wall_s=[40.0, 50.0, 45.0],
                        round_times_s=[0.5, 0.4, 0.45],
                        round_data_times_s=[0.02, 0.03, 0.01]),
                    '2':
                    dict(
                        processes=2,
                        threads=1,
                        batch_per_process=32,
                        command='OMP_NUM_THREADS=1 bash dist_train.sh a 2',
                        wall_s=[60.0, 70.0, 65.0],
                        round_times_s=[0.6, 0.8, 0.75],
                        round_data_times_s=[0.02, 0.02, 0.04]),
                })))


def test_summary_gives_the_figures_and_the_ratios():
    results = hand_made_results()
    runs = results['tasks']['classification']['runs']
    summarise(runs)
    one, two = runs['1'], runs['2']
    assert one['time_s'] == 0.45 and two['time_s'] == 0.75
    assert one['spread'] == pytest.approx(0.1 / 0.45)
    assert two['spread'] == pytest.approx(0.2 / 0.75)
    assert one['data_time_s'] == 0.02 and two['data_time_s'] == 0.02
    assert one['images_per_iter'] == 32 and two['images_per_iter'] == 64
    assert one['images_per_s'] == pytest.approx(32 / 0.45)
    assert two['images_per_s'] == pytest.approx(64 / 0.75)
    assert one['time_ratio'] == one['images_per_s_ratio'] == 1
    assert two['time_ratio'] == pytest.approx(0.75 / 0.45)
    assert two['images_per_s_ratio'] == pytest.approx(2 * 0.45 / 0.75)


def test_report_has_the_machine_the_command_and_the_table():
    results = hand_made_results()
    summarise(results['tasks']['classification']['runs'])
    report = markdown_report(results)
    assert 'Machine: Test CPU, 2 cores; torch 2.x, mmengine 0.x.' in report
    assert '    python tools/analysis/dist_scaling.py --work-dir w' in report
    assert 'in 3 rounds so that' in report
    assert 'iterations 6 to 35 of a run (after 5 warm-up iterations)' in report
    assert 'classification: the variable batch sampler' in report
    assert ('| classification | 1 | 2 | 32 | 0.450 (22%) | 0.020 | 71.1 | '
            '1.00 | 1.00 |') in report
    assert ('| classification | 2 | 1 | 64 | 0.750 (27%) | 0.020 | 85.3 | '
            '1.67 | 1.20 |') in report
    assert ('  - 2 processes, 65 s a run: '
            '`OMP_NUM_THREADS=1 bash dist_train.sh a 2`') in report


def test_the_batches_come_from_the_configs():
    # The classifier's variable batch sampler: 32 at crop 64, the most
    # images (32 * (64 / 48)**2 = 56.9) at crop 48.
    assert train_batches(SCALING_TASKS['classification'].config) == (32, 57,
                                                                     True)
    assert train_batches(SCALING_TASKS['detection'].config) == (8, 8, False)


def test_runs_use_the_training_tools_and_share_out_the_cores(monkeypatch):
    monkeypatch.setattr('os.cpu_count', lambda: 4)
    task = SCALING_TASKS['detection']
    env, command = train_command(task, 1, 'runs/x', 12)
    assert env == dict(OMP_NUM_THREADS='4')
    assert command[1:3] == [
        osp.join(REPO, 'tools', 'train.py'),
        osp.join(REPO, task.config)
    ]
    assert 'train_cfg.max_iters=12' in command
    assert command[-1] == 'model.backbone.init_cfg=None'
    env, command = train_command(task, 2, 'runs/x', 12)
    assert env['OMP_NUM_THREADS'] == '2' and int(env['PORT']) > 0
    assert command[:4] == [
        'bash',
        osp.join(REPO, 'tools', 'dist_train.sh'),
        osp.join(REPO, task.config), '2'
    ]


@pytest.mark.slow
def test_quick_run_times_the_classifier_with_1_and_2_processes(tmp_path):
    result = run_script('tools/analysis/dist_scaling.py', '--work-dir',
                        tmp_path, '--tasks', 'classification', '--quick')
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / 'scaling.json').read_text())
    runs = results['tasks']['classification']['runs']
    assert set(runs) == {'1', '2'}
    for run in runs.values():
        assert len(run['round_times_s']) == 1
        assert run['time_s'] > 0 and run['images_per_s'] > 0
    assert runs['2']['images_per_iter'] == 2 * runs['1']['images_per_iter']
    table = (tmp_path / 'scaling.md').read_text()
    for processes in (1, 2):
        row = next(line for line in table.splitlines()
                   if line.startswith(f'| classification | {processes} |'))
        numbers = [float(cell.split()[0]) for cell in row.split('|')[2:-1]]
        assert all(number > 0 for number in numbers)
