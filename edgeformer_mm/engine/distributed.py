"""Starting distributed runs on machines without GPUs.

mmengine 0.10's ``init_dist`` selects the process's GPU before it creates the
process group, also for the gloo backend, so on a machine without GPUs every
rank fails ("Found no NVIDIA driver"). :func:`init_cpu_process_group` creates
the group itself, over gloo, from the environment the launcher set (torchrun
or Slurm's ``srun``); mmengine then finds it initialised and uses it.
"""
import datetime
import os
import subprocess
from typing import Optional

import torch.distributed as torch_dist

CPU_BACKEND = 'gloo'


def _set_slurm_environment(port: Optional[int]) -> None:
    """Set what ``env://`` rendezvous reads from Slurm's task variables."""
    try:
        rank = os.environ['SLURM_PROCID']
        world_size = os.environ['SLURM_NTASKS']
        node_list = os.environ['SLURM_NODELIST']
    except KeyError as error:
        raise RuntimeError(
            f'--launcher slurm: {error.args[0]} is not set; start the job '
            'with srun (tools/slurm_train.sh)') from error
    os.environ['RANK'] = rank
    os.environ['WORLD_SIZE'] = world_size
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    if 'MASTER_ADDR' not in os.environ:
        # The job's first node hosts the rendezvous.
        hosts = subprocess.run(['scontrol', 'show', 'hostnames', node_list],
                               check=True,
                               capture_output=True,
                               text=True).stdout.split()
        os.environ['MASTER_ADDR'] = hosts[0]
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')


def init_cpu_process_group(launcher: str,
                           timeout: Optional[int] = None,
                           port: Optional[int] = None,
                           **unused) -> None:
    """Create the default process group over gloo for a run without GPUs.

    Args:
        launcher (str): ``'pytorch'`` (torchrun, which sets ``RANK``,
            ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``) or
            ``'slurm'`` (``srun``, whose ``SLURM_*`` variables are turned
            into those).
        timeout (int, optional): Seconds a collective waits for the other
            ranks, as ``env_cfg.dist_cfg.timeout``. Defaults to None:
            torch's default.
        port (int, optional): The rendezvous port of a Slurm job, as
            ``env_cfg.dist_cfg.port``. Defaults to None: ``MASTER_PORT``,
            else 29500.
        **unused: The other ``env_cfg.dist_cfg`` entries (``backend``, which
            names a GPU backend on a GPU machine), ignored.
    """
    if launcher == 'slurm':
        _set_slurm_environment(port)
    elif launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {launcher} needs GPUs with mmengine; without GPUs '
            'start the processes with torchrun (tools/dist_train.sh, '
            '--launcher pytorch) or srun (tools/slurm_train.sh)')
    kwargs = {}
    if timeout is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=timeout)
    torch_dist.init_process_group(backend=CPU_BACKEND, **kwargs)
