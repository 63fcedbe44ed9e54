"""The runner of edgeformer_mm's tools: mmengine's, made to start without
GPUs and to survive kills."""
import os
import os.path as osp
import re
from typing import List, Optional

import torch
from mmengine.dist import is_distributed, master_only
from mmengine.hooks import CheckpointHook
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS
from mmengine.runner import Runner

from edgeformer_mm.registry import RUNNERS, register
from edgeformer_mm.utils.checkpoint import (CheckpointFileError,
                                            check_checkpoint_file)
from .distributed import CPU_BACKEND, init_cpu_process_group
from .hooks import SafeCheckpointHook

# The names CheckpointHook gives checkpoints by default.
CHECKPOINT_NAME = re.compile(r'^(?:epoch|iter)_(\d+)\.pth$')


def saved_checkpoints(directory: str) -> List[str]:
    """The ``epoch_N.pth`` / ``iter_N.pth`` files in ``directory``, newest
    (largest N) first."""
    if not osp.isdir(directory):
        return []
    numbered = [(int(match.group(1)), name) for name in os.listdir(directory)
                if (match := CHECKPOINT_NAME.match(name))]
    return [osp.join(directory, name) for _, name in sorted(numbered)[::-1]]


def _newest_complete(paths: List[str], problems: List[str]) -> Optional[str]:
    """The first complete checkpoint of ``paths``; what is wrong with the
    others before it is added to ``problems``."""
    for path in paths:
        try:
            check_checkpoint_file(path)
        except CheckpointFileError as error:
            problems.append(str(error))
            continue
        return path
    return None


def find_resume_checkpoint(work_dir: str, logger: MMLogger) -> Optional[str]:
    """The checkpoint that ``--resume`` without a path continues from.

    That is the one the work dir's ``last_checkpoint`` names if it is
    complete; else, with a warning that says why, the newest complete
    ``epoch_N.pth`` / ``iter_N.pth`` beside it. None (start from scratch)
    only if the work dir holds no checkpoint at all.

    Raises:
        CheckpointFileError: There are checkpoints, but none is complete.
    """
    record = osp.join(work_dir, 'last_checkpoint')
    named, problems = None, []
    if osp.isfile(record):
        with open(record) as f:
            named = f.read().strip()
        if not named:
            problems.append(f'{record} is empty')
    if named:
        try:
            check_checkpoint_file(named)
            return named
        except CheckpointFileError as error:
            problems.append(f'{record} names {error}')
    directory = osp.dirname(named) if named else work_dir
    others = [path for path in saved_checkpoints(directory) if path != named]
    found = _newest_complete(others, problems)
    if found is not None:
        reason = '; '.join(problems) or f'{work_dir} has no last_checkpoint'
        logger.warning(f'{reason}: resuming from the newest complete '
                       f'checkpoint, {found}')
        return found
    if problems:
        raise CheckpointFileError(
            f'cannot resume: {"; ".join(problems)}; {directory} holds no '
            'other complete checkpoint. Run without --resume to start from '
            'scratch.')
    logger.info(f'--resume: no checkpoint in {work_dir} yet, training '
                'starts from scratch')
    return None


def check_resume_checkpoint(path: str) -> None:
    """Raise :class:`CheckpointFileError` unless ``path`` (``--resume PATH``)
    is complete, offering the newest complete checkpoint beside it."""
    try:
        check_checkpoint_file(path)
    except CheckpointFileError as error:
        others = [
            other for other in saved_checkpoints(osp.dirname(path) or '.')
            if osp.abspath(other) != osp.abspath(path)
        ]
        older = _newest_complete(others, [])
        offer = (f'; the newest complete checkpoint beside it is {older}: '
                 f'resume with --resume {older}' if older else '')
        raise CheckpointFileError(f'cannot resume: {error}{offer}') from error


@register(RUNNERS)
class EdgeFormerRunner(Runner):
    """mmengine's Runner, which edgeformer_mm's tools build by default.

    What it adds:

    - Distributed runs without GPUs: the processes join over gloo (mmengine
      0.10 selects a GPU first, also for gloo), the model is wrapped in DDP
      without device ids, and SyncBN, which torch only has on GPUs, stays
      (or becomes) BN, with a log line. With GPUs nothing changes.
    - Checkpoints written to a temporary file and renamed when complete, and
      the oldest kept one removed only after that
      (:class:`~edgeformer_mm.engine.SafeCheckpointHook`), so a kill while
      saving leaves the previous checkpoint intact.
    - Resuming checks the checkpoint first: ``--resume`` without a path falls
      back, with a warning, from a cut-off or missing one to the newest
      complete one, and never silently starts from scratch when there are
      checkpoints; a given path that is not complete is an error that names
      it and offers the newest complete one.

    Arguments: those of :class:`mmengine.runner.Runner`.
    """

    def setup_env(self, env_cfg: dict) -> None:
        if (self.distributed and not is_distributed()
                and not torch.cuda.is_available()):
            init_cpu_process_group(self.launcher,
                                   **env_cfg.get('dist_cfg', {}))
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg: Optional[dict],
                   model: torch.nn.Module) -> torch.nn.Module:
        if (not self.distributed or torch.cuda.is_available()
                or is_model_wrapper(model)):
            return super().wrap_model(model_wrapper_cfg, model)
        backend = self.cfg.get('env_cfg',
                               {}).get('dist_cfg',
                                       {}).get('backend', CPU_BACKEND)
        self.logger.info(
            f'No GPU: the {self.world_size} processes communicate over '
            f'{CPU_BACKEND} on CPU' +
            (f' (instead of {backend})' if backend != CPU_BACKEND else ''))
        sync_bn_layers = sum(
            isinstance(module, torch.nn.SyncBatchNorm)
            for module in model.modules())
        if sync_bn_layers or self.cfg.get('sync_bn'):
            self.logger.warning(
                'torch has no SyncBN on CPU: the model trains with BN, each '
                'process normalising over its own batch '
                f'({sync_bn_layers} SyncBN layers reverted to BN' +
                (', cfg.sync_bn ignored)' if self.cfg.get('sync_bn') else ')'))
            model = revert_sync_batchnorm(model)
        wrapper_cfg = dict(
            model_wrapper_cfg or dict(
                broadcast_buffers=False,
                find_unused_parameters=self.cfg.get('find_unused_parameters',
                                                    False)))
        wrapper_cfg.setdefault('type', 'MMDistributedDataParallel')
        # DDP of a CPU module takes no device ids.
        return MODEL_WRAPPERS.build(
            wrapper_cfg, default_args=dict(module=model))

    def register_default_hooks(self, hooks: Optional[dict] = None) -> None:
        hooks = dict(hooks or {})
        checkpoint = hooks.get('checkpoint',
                               dict(type='CheckpointHook', interval=1))
        if isinstance(checkpoint,
                      dict) and checkpoint.get('type') in ('CheckpointHook',
                                                           CheckpointHook):
            hooks['checkpoint'] = dict(checkpoint, type=SafeCheckpointHook)
        super().register_default_hooks(hooks)

    @master_only
    def save_checkpoint(self,
                        out_dir: str,
                        filename: str,
                        file_client_args: Optional[dict] = None,
                        **kwargs) -> None:
        local = (
            file_client_args is None and kwargs.get('backend_args') is None
            and '://' not in out_dir)
        if not local:
            return super().save_checkpoint(out_dir, filename, file_client_args,
                                           **kwargs)
        # A kill while writing leaves the temporary file, never a cut-off
        # checkpoint under the real name.
        partial = f'.{filename}.partial'
        super().save_checkpoint(out_dir, partial, file_client_args, **kwargs)
        os.replace(osp.join(out_dir, partial), osp.join(out_dir, filename))

    def load_or_resume(self) -> None:
        if not self._has_loaded and self._resume and self._load_from is None:
            self._load_from = find_resume_checkpoint(self.work_dir,
                                                     self.logger)
            # Nothing to resume from: mmengine would look again.
            self._resume = self._load_from is not None
        elif (not self._has_loaded and self._load_from is not None
              and '://' not in self._load_from):  # a local file
            if self._resume:
                check_resume_checkpoint(self._load_from)
            else:
                check_checkpoint_file(self._load_from)
        super().load_or_resume()
