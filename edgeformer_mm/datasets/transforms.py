"""Data transforms for multi-scale training."""
import numpy as np
from mmpretrain.datasets.transforms import RandomResizedCrop

from edgeformer_mm.registry import TRANSFORMS, register


@register(TRANSFORMS)
class VariableRandomResizedCrop(RandomResizedCrop):
    """:class:`RandomResizedCrop` to the crop size chosen for the batch.

    The official EdgeFormer training crops every image of a batch to the
    square size its multi-scale sampler chose for that batch.
    :class:`VariableBatchSampler` and :class:`VariableCropDataset` put that
    size in ``results['crop_size']``; without it (e.g. in a plain data
    loader) the crop is resized to ``scale`` as usual.

    **Required Keys:**

    - img
    - crop_size (int, optional)

    **Modified Keys:**

    - img
    - img_shape

    Args:
        scale (Sequence | int): The output size, ``(h, w)`` or a square side,
            used when ``results`` has no ``crop_size``.
        **kwargs: The other arguments of :class:`RandomResizedCrop`:
            ``crop_ratio_range`` (0.08 to 1), ``aspect_ratio_range``
            (3/4 to 4/3), ``max_attempts``, ``interpolation`` ('bilinear')
            and ``backend`` ('cv2'), the official settings by default.
    """

    def transform(self, results: dict) -> dict:
        """Crop a random region and resize it to the batch's crop size.

        Args:
            results (dict): The result dict of the loading pipeline.

        Returns:
            dict: ``results`` with the resized crop as ``img`` and its shape
            as ``img_shape``.
        """
        crop_size = results.get('crop_size')
        if crop_size is None:
            return super().transform(results)
        if (isinstance(crop_size, bool)
                or not isinstance(crop_size, (int, np.integer))
                or crop_size <= 0):
            raise ValueError('results["crop_size"] must be a positive int, '
                             f'got {crop_size!r}')
        # Each data loader worker has its own copy of the transform and runs
        # one sample at a time, so the size can be swapped in and back.
        default_scale = self.scale
        self.scale = (int(crop_size), int(crop_size))
        try:
            return super().transform(results)
        finally:
            self.scale = default_scale
