"""EdgeFormerRunner's checkpoints: complete or refused, written so that a
kill cannot destroy the last good one, resumed from the newest complete
one."""
import random
from unittest.mock import Mock

import numpy as np
import pytest
import torch
from mmengine.fileio import LocalBackend
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from torch import nn
from torch.utils.data import Dataset

from edgeformer_mm.engine import (EdgeFormerRunner, EpochSeedHook,
                                  SafeCheckpointHook, find_resume_checkpoint,
                                  saved_checkpoints)
from edgeformer_mm.engine.runner import check_resume_checkpoint
from edgeformer_mm.utils.checkpoint import (CheckpointFileError,
                                            check_checkpoint_file)


def save(path, value=1.0):
    torch.save(dict(state_dict=dict(w=torch.full((64, ), value))), path)
    return str(path)


def cut_off(path):
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    return str(path)


@pytest.fixture
def logger():
    return Mock(spec=MMLogger)


def test_check_checkpoint_file(tmp_path):
    check_checkpoint_file(save(tmp_path / 'good.pth'))
    legacy = tmp_path / 'legacy.pth'
    torch.save(
        dict(w=torch.ones(3)), legacy, _use_new_zipfile_serialization=False)
    check_checkpoint_file(str(legacy))

    (tmp_path / 'empty.pth').write_bytes(b'')
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    cases = {
        tmp_path / 'missing.pth': 'does not exist',
        tmp_path: 'is a directory, not a checkpoint file',
        tmp_path / 'empty.pth': 'is empty',
        cut_off(save(tmp_path / 'cut.pth')): 'is cut off (killed while being '
        'written?)',
        tmp_path / 'text.pth': 'is not a PyTorch checkpoint (',
    }
    for path, problem in cases.items():
        with pytest.raises(CheckpointFileError) as error:
            check_checkpoint_file(str(path))
        assert str(error.value).startswith(f'{path} {problem}')


def test_damaged_member_is_named(tmp_path):
    path = save(tmp_path / 'flipped.pth')
    data = bytearray(open(path, 'rb').read())
    # A byte of the tensor's data (stored uncompressed) changed.
    offset = data.index(torch.full((64, ), 1.0).numpy().tobytes())
    data[offset] ^= 0xFF
    open(path, 'wb').write(bytes(data))
    with pytest.raises(CheckpointFileError, match='is damaged'):
        check_checkpoint_file(path)


def test_saved_checkpoints_newest_first(tmp_path):
    for name in ('epoch_2.pth', 'epoch_10.pth', 'epoch_1.pth', 'best.pth',
                 '.epoch_11.pth.partial', 'last_checkpoint'):
        (tmp_path / name).write_bytes(b'x')
    assert saved_checkpoints(str(tmp_path)) == [
        str(tmp_path / name)
        for name in ('epoch_10.pth', 'epoch_2.pth', 'epoch_1.pth')
    ]
    assert saved_checkpoints(str(tmp_path / 'none')) == []


def write_last(work_dir, text):
    (work_dir / 'last_checkpoint').write_text(text)


def test_resume_from_last_checkpoint(tmp_path, logger):
    save(tmp_path / 'epoch_1.pth')
    last = save(tmp_path / 'epoch_2.pth')
    write_last(tmp_path, last)
    assert find_resume_checkpoint(str(tmp_path), logger) == last


@pytest.mark.parametrize('damage', ['cut off', 'missing', 'empty record'])
def test_resume_falls_back_to_the_newest_complete(tmp_path, logger, damage):
    older = save(tmp_path / 'epoch_1.pth')
    last = str(tmp_path / 'epoch_2.pth')
    if damage == 'cut off':
        cut_off(save(last))
        write_last(tmp_path, last)
        reason = f'names {last} is cut off'
    elif damage == 'missing':
        write_last(tmp_path, last)
        reason = f'names {last} does not exist'
    else:
        write_last(tmp_path, '')
        reason = 'last_checkpoint is empty'
    assert find_resume_checkpoint(str(tmp_path), logger) == older
    warning = logger.warning.call_args.args[0]
    assert reason in warning
    assert warning.endswith(
        f': resuming from the newest complete checkpoint, {older}')


def test_resume_without_record_takes_the_newest_checkpoint(tmp_path, logger):
    """mmengine would start from scratch here."""
    save(tmp_path / 'epoch_1.pth')
    newest = save(tmp_path / 'epoch_2.pth')
    assert find_resume_checkpoint(str(tmp_path), logger) == newest
    assert f'{tmp_path} has no last_checkpoint' in (
        logger.warning.call_args.args[0])


def test_resume_refuses_when_no_checkpoint_is_complete(tmp_path, logger):
    last = cut_off(save(tmp_path / 'epoch_2.pth'))
    older = cut_off(save(tmp_path / 'epoch_1.pth'))
    write_last(tmp_path, last)
    with pytest.raises(CheckpointFileError) as error:
        find_resume_checkpoint(str(tmp_path), logger)
    message = str(error.value)
    assert message.startswith('cannot resume: ')
    assert last in message and older in message
    assert 'Run without --resume to start from scratch' in message


def test_resume_from_nothing_starts_from_scratch(tmp_path, logger):
    assert find_resume_checkpoint(str(tmp_path), logger) is None
    assert 'training starts from scratch' in logger.info.call_args.args[0]


def test_given_checkpoint_that_is_cut_off_offers_the_complete_one(tmp_path):
    older = save(tmp_path / 'epoch_1.pth')
    last = cut_off(save(tmp_path / 'epoch_2.pth'))
    with pytest.raises(CheckpointFileError) as error:
        check_resume_checkpoint(last)
    assert str(error.value).startswith(f'cannot resume: {last} is cut off')
    assert str(error.value).endswith(
        f'the newest complete checkpoint beside it is {older}: resume with '
        f'--resume {older}')
    check_resume_checkpoint(older)


class Ones(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return dict(inputs=torch.ones(2))


class Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='loss'):
        return dict(loss=self.linear(torch.stack(inputs)).mean())


def toy_runner(work_dir, max_epochs, max_keep_ckpts=1, **kwargs):
    return EdgeFormerRunner(
        model=Toy(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=Ones(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate'),
            batch_size=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        # The scope the Runner makes current stays so after it: mmengine's
        # would break later tests that build mmpretrain pipelines.
        default_scope='mmpretrain',
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook',
                interval=1,
                max_keep_ckpts=max_keep_ckpts)),
        **kwargs)


def test_checkpoint_hook_is_the_safe_one(tmp_path):
    runner = toy_runner(tmp_path, 1)
    hooks = [
        hook for hook in runner.hooks if isinstance(hook, SafeCheckpointHook)
    ]
    assert len(hooks) == 1 and hooks[0].max_keep_ckpts == 1


def test_a_kill_while_saving_keeps_the_previous_checkpoint(
        tmp_path, monkeypatch):
    toy_runner(tmp_path, 1).train()
    first = tmp_path / 'epoch_1.pth'
    check_checkpoint_file(str(first))
    before = first.read_bytes()

    # The next save dies half-way through writing the file.
    def killed_while_writing(backend, data, path):
        with open(path, 'wb') as f:
            f.write(data[:len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalBackend, 'put', killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        toy_runner(tmp_path, 2, resume=True).train()
    monkeypatch.undo()
    assert first.read_bytes() == before
    assert not (tmp_path / 'epoch_2.pth').exists()
    assert (tmp_path / 'last_checkpoint').read_text() == str(first)


def test_the_oldest_kept_checkpoint_goes_after_the_new_one_is_saved(tmp_path):
    toy_runner(tmp_path, 3).train()
    assert saved_checkpoints(str(tmp_path)) == [str(tmp_path / 'epoch_3.pth')]


def test_every_checkpoint_is_kept_by_default(tmp_path):
    toy_runner(tmp_path, 2, max_keep_ckpts=-1).train()  # mmengine's default
    assert saved_checkpoints(str(tmp_path)) == [
        str(tmp_path / 'epoch_2.pth'),
        str(tmp_path / 'epoch_1.pth')
    ]


class FakeRunner:
    seed = 5
    epoch = 0


def draws(hook, runner):
    hook.before_train_epoch(runner)
    return torch.rand(2).tolist(), np.random.rand(), random.random()


def test_epoch_seed_hook_draws_depend_on_the_epoch_only():
    hook, runner = EpochSeedHook(), FakeRunner()
    first = draws(hook, runner)
    torch.rand(100)  # what ran before does not matter
    assert draws(hook, runner) == first
    runner.epoch = 1
    assert draws(hook, runner) != first
    assert draws(EpochSeedHook(seed=6), runner) != draws(hook, runner)
