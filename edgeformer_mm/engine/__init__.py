from .distributed import init_cpu_process_group
from .hooks import EpochSeedHook, SafeCheckpointHook
from .runner import EdgeFormerRunner, find_resume_checkpoint, saved_checkpoints

__all__ = [
    'EdgeFormerRunner', 'EpochSeedHook', 'SafeCheckpointHook',
    'find_resume_checkpoint', 'init_cpu_process_group', 'saved_checkpoints'
]
