from importlib.util import find_spec

from .dataset_wrappers import VariableCropDataset
from .transforms import (CorruptFileError, LoadImageFromFileChecked,
                         VariableRandomResizedCrop)
from .variable_batch_sampler import (VariableBatchSampler,
                                     multi_scale_crop_sizes)

__all__ = [
    'CorruptFileError', 'LoadImageFromFileChecked', 'VariableBatchSampler',
    'VariableCropDataset', 'VariableRandomResizedCrop',
    'multi_scale_crop_sizes'
]

# mmseg is an optional extra ('seg'); the classifiers do not need it.
if find_spec('mmseg') is not None:
    from .seg_transforms import LoadSegAnnotationsChecked
    __all__ += ['LoadSegAnnotationsChecked']
