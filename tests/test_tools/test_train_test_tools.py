"""tools/train.py and tools/test.py: run as a user runs them, and their
errors."""
import os.path as osp

import pytest
import torch
from helpers import REPO, run_main, run_script

from edgeformer_mm.utils import build_model


CONFIG = osp.join(REPO, 'configs/mmpretrain/edgeformer')


def run_tool(tool, *args, cwd=REPO):
    return run_script(f'tools/{tool}', *args, cwd=cwd)


def test_missing_data_set_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        run_main('tools/train.py',
                 osp.join(CONFIG, 'edgeformer-s_8xb128_in1k.py'))
    message = str(error.value)
    assert ("train_dataloader: data_root 'data/imagenet' does not exist. "
            'Put ImageNet-1k') in message
    assert 'train_dataloader.dataset.dataset.data_root=PATH' in message


@pytest.mark.parametrize('checkpoint', ['empty', 'directory', 'other model'])
def test_test_tool_refuses_what_is_no_checkpoint_of_the_model(
        checkpoint, tmp_path):
    path = tmp_path / 'epoch_1.pth'
    if checkpoint == 'empty':
        path.write_bytes(b'')
        problem = 'is empty'
    elif checkpoint == 'directory':
        path.mkdir()
        problem = 'is a directory, not a checkpoint file'
    else:  # the ImageNet XS classifier: 1000 classes, not 4
        xs = build_model(osp.join(CONFIG, 'edgeformer-xs_8xb128_in1k.py'))
        torch.save(dict(state_dict=xs.state_dict()), path)
        problem = ('does not fit the model of the config: 2 weights of '
                   'another shape, 0 missing, 0 unexpected (first: shape '
                   '(1000, 640) for head.fc.weight, expected (4, 640))')
    with pytest.raises(SystemExit) as error:
        run_main('tools/test.py',
                 osp.join(CONFIG, 'edgeformer-xs_1xb32_tiny-shapes.py'), path,
                 '--work-dir', tmp_path / 'work')
    assert str(error.value) == f'error: {path} {problem}'


@pytest.mark.slow
def test_train_then_test(tiny_root, tmp_path):
    root = tiny_root
    classes = osp.join(root, 'classes.txt')
    options = [
        f'train_dataloader.dataset.dataset.data_root={root}',
        f'train_dataloader.dataset.dataset.classes={classes}',
        f'val_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.classes={classes}',
        f'test_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.classes={classes}',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.persistent_workers=False',
        'train_dataloader.batch_sampler.crop_sizes=[32]',
        'train_dataloader.batch_sampler.base_crop_size=32',
        'train_dataloader.batch_size=8', 'train_cfg.max_epochs=1',
        'default_hooks.checkpoint.interval=1'
    ]
    config = osp.join(CONFIG, 'edgeformer-xs_1xb32_tiny-shapes.py')
    work_dir = str(tmp_path / 'work')
    train = run_tool('train.py', config, '--work-dir', work_dir,
                     '--cfg-options', *options)
    assert train.returncode == 0, train.stderr[-3000:]
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(checkpoint)

    out = str(tmp_path / 'preds.pkl')
    test = run_tool('test.py', config, checkpoint, '--work-dir', work_dir,
                    '--out', out, '--cfg-options', *options)
    assert test.returncode == 0, test.stderr[-3000:]
    assert 'accuracy/top1' in test.stdout + test.stderr
    assert osp.isfile(out)

    # --resume continues from the last checkpoint to a longer schedule.
    resume = run_tool('train.py', config, '--work-dir', work_dir, '--resume',
                      '--cfg-options', *options[:-2],
                      'train_cfg.max_epochs=2',
                      'default_hooks.checkpoint.interval=1')
    assert resume.returncode == 0, resume.stderr[-3000:]
    log = resume.stdout + resume.stderr
    assert 'resumed epoch: 1, iter: 2' in log
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))
