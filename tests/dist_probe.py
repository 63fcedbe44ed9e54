"""A hook the distributed-training tests load into the tools' processes
(``custom_imports``): it records what each rank trained on and its final
weights, and can stop a run at an iteration for a test to kill it.

Each rank writes ``<work_dir>/probe/rank<R>.json``: the data of every
training step (epoch, iteration, the input sizes, the image files) and a
digest of the model's parameters after training (the buffers, BN's
running statistics, are each rank's own: mmengine's DDP does not broadcast
them). With ``PROBE_STOP_AT_ITER=N`` in the environment, every rank writes
``probe/stopped_rank<R>`` (its pid) before iteration N and waits there to be
killed.
"""
import hashlib
import json
import os
import os.path as osp
import time

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


def parameters_digest(model) -> str:
    """sha256 of every parameter's bytes, in name order."""
    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(parameter.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


@HOOKS.register_module()
class ProbeHook(Hook):

    def before_train(self, runner):
        self.steps = []
        self.folder = osp.join(runner.work_dir, 'probe')
        os.makedirs(self.folder, exist_ok=True)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        stop_at = os.environ.get('PROBE_STOP_AT_ITER')
        if stop_at is not None and runner.iter == int(stop_at):
            path = osp.join(self.folder, f'stopped_rank{get_rank()}')
            with open(path, 'w') as f:
                f.write(str(os.getpid()))
            while True:
                time.sleep(1)
        # A batch tensor or a list of images (before the data preprocessor).
        sizes = sorted(
            {tuple(image.shape[-2:])
             for image in data_batch['inputs']})
        self.steps.append(
            dict(
                epoch=runner.epoch,
                iter=runner.iter,
                sizes=sizes,
                images=[
                    sample.metainfo['img_path']
                    for sample in data_batch['data_samples']
                ]))

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        with open(osp.join(self.folder, f'rank{get_rank()}.json'), 'w') as f:
            json.dump(
                dict(steps=self.steps, parameters=parameters_digest(model)), f)
