from .dataset_wrappers import VariableCropDataset
from .transforms import VariableRandomResizedCrop
from .variable_batch_sampler import (VariableBatchSampler,
                                     multi_scale_crop_sizes)

__all__ = [
    'VariableBatchSampler', 'VariableCropDataset', 'VariableRandomResizedCrop',
    'multi_scale_crop_sizes'
]
