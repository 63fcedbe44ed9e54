"""A segmentation annotation loader that fails or skips a corrupt label map,
naming it (needs mmseg)."""
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations

from edgeformer_mm.registry import TRANSFORMS, register
from .transforms import (CorruptFileError, CorruptFilePolicy, check_complete,
                         decode_image)


@register(TRANSFORMS)
class LoadSegAnnotationsChecked(CorruptFilePolicy, LoadAnnotations):
    """mmseg's :class:`~mmseg.datasets.transforms.LoadAnnotations` that
    fails or skips a corrupt label map, naming it.

    The label map file is checked as :class:`LoadImageFromFileChecked`
    checks images (empty, JPEG or PNG cut short, cannot be decoded) and,
    once loaded, must be the size of its image: otherwise it raises
    :class:`CorruptFileError`, which ``on_corrupt`` turns into a skip (see
    :class:`CorruptFilePolicy`). A good file gives exactly what mmseg's
    ``LoadAnnotations`` gives.

    **Required Keys:**

    - seg_map_path
    - ori_shape (the size of the loaded image)
    - reduce_zero_label, seg_fields (as mmseg's ``LoadAnnotations``)

    **Added Keys:**

    - gt_seg_map

    Args:
        on_corrupt (str): ``'error'`` or ``'skip'`` (training only).
            Defaults to 'error'.
        **kwargs: The other arguments of mmseg's ``LoadAnnotations``:
            ``reduce_zero_label``, ``backend_args`` and ``imdecode_backend``.
    """

    def _load_seg_map(self, results: dict) -> None:
        """Load the label map as mmseg does, once its file is checked.

        Args:
            results (dict): The result dict, with ``seg_map_path``.

        Raises:
            CorruptFileError: If the file is corrupt or the label map is not
                the size of its image.
        """
        path = results['seg_map_path']
        data = fileio.get(path, backend_args=self.backend_args)
        check_complete(path, data)
        try:
            # mmseg reads the file again (a label map is small and now
            # cached) rather than its label handling be copied here.
            super()._load_seg_map(results)
        except Exception:
            # The file is to blame only if its bytes do not decode.
            decode_image(path, data, 'unchanged', self.imdecode_backend)
            raise
        label_hw = tuple(results['gt_seg_map'].shape[:2])
        image_hw = tuple(results['ori_shape'][:2])
        if label_hw != image_hw:
            raise CorruptFileError(
                f'{path}: label map size {label_hw[0]}x{label_hw[1]} '
                f"differs from its image's {image_hw[0]}x{image_hw[1]} "
                f'({results.get("img_path")})')
