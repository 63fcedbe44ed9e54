"""Data transforms: multi-scale cropping, and image loading that fails or
skips a corrupt file, naming it."""
import logging
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log
from mmpretrain.datasets.transforms import RandomResizedCrop

from edgeformer_mm.registry import TRANSFORMS, register

ON_CORRUPT = ('error', 'skip')
JPEG_START = b'\xff\xd8'
JPEG_END = b'\xff\xd9'
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# The IEND chunk: no data, so always the same length, type and CRC.
PNG_END = b'\x00\x00\x00\x00IEND\xaeB`\x82'


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


class CorruptFileError(ValueError):
    """A data file that cannot be used: empty, cut short, undecodable, or a
    label map whose size is not its image's.

    The message is ``'<path>: <what is wrong>'``.
    """


def check_complete(path: str, data: bytes) -> None:
    """Check that the bytes of an image file are all there.

    A JPEG must have its end-of-image marker (FFD9) after its image data and
    a PNG its IEND chunk; data after them is allowed (decoders ignore it;
    phones append videos and maker data to JPEGs). Other formats are left to
    the decoder.

    Args:
        path (str): The file's path, for the message.
        data (bytes): The file's contents.

    Raises:
        CorruptFileError: If the file is empty or a JPEG or PNG cut short.
    """
    if not data:
        raise CorruptFileError(f'{path}: empty file')
    if data.startswith(JPEG_START) and not _jpeg_has_end(data):
        raise CorruptFileError(
            f'{path}: JPEG cut short (no end-of-image marker FFD9 after '
            'its image data)')
    if data.startswith(PNG_SIGNATURE) and PNG_END not in data:
        raise CorruptFileError(f'{path}: PNG cut short (no IEND chunk)')


def _jpeg_has_end(data: bytes) -> bool:
    """Whether a JPEG has an end-of-image marker after its first scan.

    The marker segments are walked up to the first scan, so that the end
    marker of a thumbnail in the header does not count. The scan data can
    hold no FFD9: an FF byte in it is followed by 00 or a restart marker.
    """
    pos = len(JPEG_START)
    while True:
        # As libjpeg does, skip stray bytes before a marker.
        pos = data.find(b'\xff', pos)
        if pos < 0 or pos + 4 > len(data):
            return False
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan
            return data.find(JPEG_END, pos) >= 0
        if marker == 0xFF:  # fill byte
            pos += 1
        else:  # a segment: the marker, then its length (which counts itself)
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], 'big')


def decode_image(path: str, data: bytes, flag: str,
                 backend: str) -> np.ndarray:
    """``mmcv.imfrombytes(data, flag=flag, backend=backend)``, naming the
    file if it fails.

    Args:
        path (str): The file's path, for the message.
        data (bytes): The file's contents.
        flag (str): The ``flag`` of :func:`mmcv.imfrombytes`.
        backend (str): The ``backend`` of :func:`mmcv.imfrombytes`.

    Returns:
        np.ndarray: The image.

    Raises:
        CorruptFileError: If the image cannot be decoded.
    """
    try:
        img = mmcv.imfrombytes(data, flag=flag, backend=backend)
    except Exception as error:  # each backend fails its own way
        raise CorruptFileError(
            f'{path}: cannot be decoded ({error})') from error
    if img is None:  # cv2's way
        raise CorruptFileError(f'{path}: cannot be decoded')
    return img


class CorruptFilePolicy:
    """Mixin of the checking loaders: what a :class:`CorruptFileError`
    raised by the transform does, as ``on_corrupt`` says.

    ``'error'`` raises it; ``'skip'`` logs it as a warning and returns None,
    upon which mmengine's ``BaseDataset`` replaces the sample by another
    (up to its ``max_refetch`` times). ``BaseDataset`` does that in training
    only: in test mode it raises on None, so ``'skip'`` is for training
    pipelines.

    Args:
        on_corrupt (str): ``'error'`` or ``'skip'``. Defaults to 'error'.
        **kwargs: The arguments of the transform.
    """

    def __init__(self, on_corrupt: str = 'error', **kwargs) -> None:
        super().__init__(**kwargs)
        if on_corrupt not in ON_CORRUPT:
            raise ValueError(f'on_corrupt must be one of {ON_CORRUPT}, '
                             f'got {on_corrupt!r}')
        self.on_corrupt = on_corrupt

    def __call__(self, results: dict) -> Optional[dict]:
        try:
            return super().__call__(results)
        except CorruptFileError as error:
            if self.on_corrupt == 'error':
                raise
            print_log(
                f'Skipped a sample: {error}',
                logger='current',
                level=logging.WARNING)
            return None


@register(TRANSFORMS)
class LoadImageFromFileChecked(CorruptFilePolicy, LoadImageFromFile):
    """:class:`~mmcv.transforms.LoadImageFromFile` that fails or skips a
    corrupt file, naming it.

    The file is read once; an empty file, a JPEG or PNG cut short (see
    :func:`check_complete`) or one that cannot be decoded raises
    :class:`CorruptFileError`, which ``on_corrupt`` turns into a skip (see
    :class:`CorruptFilePolicy`). A good file gives exactly what
    :class:`~mmcv.transforms.LoadImageFromFile` gives.

    **Required Keys:**

    - img_path

    **Modified Keys:**

    - img
    - img_shape
    - ori_shape

    Args:
        on_corrupt (str): ``'error'`` or ``'skip'`` (training only).
            Defaults to 'error'.
        **kwargs: The other arguments of
            :class:`~mmcv.transforms.LoadImageFromFile`: ``to_float32``,
            ``color_type``, ``imdecode_backend`` and ``backend_args``; not
            its deprecated ``file_client_args``, nor ``ignore_empty``,
            which ``on_corrupt`` replaces.
    """

    def __init__(self, on_corrupt: str = 'error', **kwargs) -> None:
        super().__init__(on_corrupt=on_corrupt, **kwargs)
        if self.file_client_args is not None or self.ignore_empty:
            raise ValueError(
                f'{type(self).__name__} reads files with backend_args and '
                "skips bad ones with on_corrupt='skip': it takes neither "
                'file_client_args nor ignore_empty')

    def transform(self, results: dict) -> dict:
        """Load the image, as :class:`~mmcv.transforms.LoadImageFromFile`
        does once the file is checked.

        Args:
            results (dict): The result dict, with ``img_path``.

        Returns:
            dict: ``results`` with ``img``, ``img_shape`` and
            ``ori_shape``.

        Raises:
            CorruptFileError: If the file is corrupt.
        """
        path = results['img_path']
        data = fileio.get(path, backend_args=self.backend_args)
        check_complete(path, data)
        img = decode_image(path, data, self.color_type, self.imdecode_backend)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
