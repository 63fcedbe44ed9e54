from .complexity import count_macs, count_parameters
from .runner import (add_runner_arguments, build_model, build_runner,
                     check_checkpoint_fits, check_data_roots, config_from_args,
                     make_deterministic)

__all__ = [
    'add_runner_arguments', 'build_model', 'build_runner',
    'check_checkpoint_fits', 'check_data_roots', 'config_from_args',
    'count_macs', 'count_parameters', 'make_deterministic'
]
