"""Hooks that make training survive a kill and resume reproducibly."""
import random

import numpy as np
import torch
from mmengine.dist import get_rank, is_main_process
from mmengine.hooks import CheckpointHook, Hook

from edgeformer_mm.registry import HOOKS, register


@register(HOOKS)
class SafeCheckpointHook(CheckpointHook):
    """mmengine's CheckpointHook that never leaves a run without a complete
    checkpoint.

    With ``max_keep_ckpts``, mmengine removes the oldest kept checkpoint
    before it saves the new one, so a kill while saving can leave none. This
    hook removes it once the new one is saved (and
    :class:`~edgeformer_mm.engine.EdgeFormerRunner` writes it to a temporary
    file renamed when complete). Arguments: those of ``CheckpointHook``.
    """

    def _save_checkpoint_with_step(self, runner, step, meta):
        oldest = None
        # keep_ckpt_ids only exists with max_keep_ckpts > 0; a step saved
        # twice (a best and a regular checkpoint) is kept once.
        if (self.max_keep_ckpts > 0
                and len(self.keep_ckpt_ids) == self.max_keep_ckpts
                and self.keep_ckpt_ids[-1] != step):
            # Out of the kept ones before mmengine would remove it.
            oldest = self.keep_ckpt_ids.popleft()
        super()._save_checkpoint_with_step(runner, step, meta)
        if oldest is not None and is_main_process():
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(oldest))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # DeepSpeed's checkpoints
                self.file_backend.rmtree(path)


@register(HOOKS)
class EpochSeedHook(Hook):
    """Seed the random generators at the start of every training epoch.

    Python's, numpy's and torch's generators of each process are seeded from
    ``(seed, epoch, rank)`` before the epoch's data loader starts, so what an
    epoch draws (augmentations in the main process, dropout, the data loader
    workers' base seeds) does not depend on what ran before it. A run resumed
    from an epoch's checkpoint then continues bitwise like one that never
    stopped, on CPU and in deterministic mode; workers must not be
    persistent (their generators would run on across epochs).

    Args:
        seed (int, optional): The base seed. Defaults to None: the runner's
            seed (``randomness.seed``).
    """

    priority = 'VERY_HIGH'

    def __init__(self, seed=None):
        self.seed = seed

    def before_train_epoch(self, runner) -> None:
        seed = runner.seed if self.seed is None else self.seed
        state = np.random.SeedSequence([seed, runner.epoch, get_rank()])
        epoch_seed = int(state.generate_state(1)[0])
        random.seed(epoch_seed)
        np.random.seed(epoch_seed)
        torch.manual_seed(epoch_seed)
