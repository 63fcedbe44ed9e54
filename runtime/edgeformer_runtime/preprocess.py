"""Test-time preprocessing from a bundle's description, identical to the
OpenMMLab pipelines it was written from.

Images are decoded as mmcv's ``LoadImageFromFile`` does (OpenCV,
``IMREAD_COLOR``: BGR, grayscale images repeated to three channels, an alpha
channel dropped, EXIF orientation applied) and resized as mmcv's default
``cv2`` backend does on x86 (with Pillow where the pipeline asks for it, as
mmcv's ``pillow`` backend does), with the same size and crop rounding as
mmpretrain's ``ResizeEdge``, mmcv's ``Resize`` and ``CenterCrop``; so the
network sees the same numbers as in PyTorch.

Bilinear and nearest resizes of 8-bit images are computed here, with
OpenCV's integer arithmetic as its x86 build runs it: OpenCV's ARM build
rounds differently (up to 2 levels apart in about 3% of the values), which
would make a board's predictions differ from the PC's.
"""
import os
from typing import List, Tuple, Union

import cv2
import numpy as np

INTERPOLATIONS = {
    'nearest': cv2.INTER_NEAREST,
    'bilinear': cv2.INTER_LINEAR,
    'bicubic': cv2.INTER_CUBIC,
    'area': cv2.INTER_AREA,
    'lanczos': cv2.INTER_LANCZOS4,
}

PILLOW_INTERPOLATIONS = ('nearest', 'bilinear', 'bicubic', 'box', 'lanczos',
                         'hamming')


class ImageError(ValueError):
    """An image that cannot be read or preprocessed."""


class Preprocessed:
    """The network input and what postprocessing needs to map predictions
    back to the image.

    Attributes:
        input (np.ndarray): float32 (3, H, W).
        ori_shape (tuple): (height, width) of the image.
        img_shape (tuple): (height, width) after resizing and cropping,
            before padding.
        scale_factor (tuple): (w, h) factors of the last resize.
    """

    def __init__(self, image: np.ndarray):
        self.image = image
        self.input = None
        self.ori_shape = image.shape[:2]
        self.img_shape = image.shape[:2]
        self.scale_factor = (1., 1.)


def load_image(image: Union[str, os.PathLike, np.ndarray]) -> np.ndarray:
    """Decode an image file as mmcv does, or check an array.

    Args:
        image: A file path, or a uint8 (H, W, 3) array in BGR order (as
            ``cv2.imread`` and mmcv return).

    Returns:
        np.ndarray: uint8 (H, W, 3), BGR.

    Raises:
        ImageError: Not an image file, or an array of another type or shape.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ImageError(
                f'an image array must be uint8 (H, W, 3) in BGR order, not '
                f'{image.dtype} {image.shape}: convert grayscale or RGBA '
                'arrays first (cv2.cvtColor)')
        array = image
    else:
        path = os.fspath(image)
        try:
            with open(path, 'rb') as f:
                data = np.frombuffer(f.read(), np.uint8)
        except OSError as error:
            raise ImageError(f'cannot read {path}: {error.strerror}')
        array = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if array is None:
            raise ImageError(f'{path} is not an image OpenCV can decode')
    if min(array.shape[:2]) < 1:
        raise ImageError(f'the image is empty ({array.shape})')
    return array


def _source_positions(n_out: int, n_in: int):
    """OpenCV's source index and fraction of each output pixel (half-pixel
    centres, computed in double, then float)."""
    position = ((np.arange(n_out) + .5) * (1. / (n_out / n_in)) - .5).astype(
        np.float32)
    index = np.floor(position).astype(np.int64)
    return index, position - index.astype(np.float32)


def _fixed_point(weights: np.ndarray) -> np.ndarray:
    """Weights with 11 fractional bits, rounded half to even."""
    return np.rint(weights * np.float32(2048)).astype(np.int64)


def resize_bilinear_u8(image: np.ndarray, width: int,
                       height: int) -> np.ndarray:
    """``cv2.resize(image, (width, height), interpolation=INTER_LINEAR)`` of
    an 8-bit (H, W, C) image, bit for bit as on x86."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image.copy()
    pixels = image.astype(np.int64)
    if (h, w) == (2 * height, 2 * width):  # OpenCV averages 2x2 blocks here
        total = (
            pixels[0::2, 0::2] + pixels[0::2, 1::2] + pixels[1::2, 0::2] +
            pixels[1::2, 1::2])
        return ((total + 2) >> 2).astype(np.uint8)
    x0, fx = _source_positions(width, w)
    # Columns outside the image take the edge pixel with the full weight.
    outside = (x0 < 0) | (x0 >= w - 1)
    fx[outside] = 0
    x0 = np.clip(x0, 0, w - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    a0, a1 = _fixed_point(np.float32(1) - fx), _fixed_point(fx)
    rows = (pixels[:, x0] * a0[:, None] + pixels[:, x1] * a1[:, None])
    y0, fy = _source_positions(height, h)
    b0, b1 = _fixed_point(np.float32(1) - fy), _fixed_point(fy)
    top = rows[np.clip(y0, 0, h - 1)] >> 4
    bottom = rows[np.clip(y0 + 1, 0, h - 1)] >> 4
    value = (((b0[:, None, None] * top) >> 16) +
             ((b1[:, None, None] * bottom) >> 16) + 2) >> 2
    return np.clip(value, 0, 255).astype(np.uint8)


def resize_nearest_u8(image: np.ndarray, width: int,
                      height: int) -> np.ndarray:
    """``cv2.resize(..., interpolation=INTER_NEAREST)``: the source pixel
    floor(d * src / dst)."""
    h, w = image.shape[:2]
    ys = np.minimum(
        np.floor(np.arange(height) * (1. / (height / h))).astype(np.int64),
        h - 1)
    xs = np.minimum(
        np.floor(np.arange(width) * (1. / (width / w))).astype(np.int64),
        w - 1)
    return image[ys][:, xs]


OWN_RESIZES = {'bilinear': resize_bilinear_u8, 'nearest': resize_nearest_u8}


def _pillow_resize(image: np.ndarray, size: Tuple[int, int],
                   interpolation: str) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError('this bundle resizes with Pillow, which is not '
                          'installed: pip install pillow') from error
    method = getattr(Image.Resampling, interpolation.upper())
    return np.asarray(Image.fromarray(image).resize(size, method))


def _resize(state: Preprocessed,
            size: Tuple[int, int],
            interpolation: str,
            backend: str = 'cv2'):
    """Resize to (height, width) as mmcv.imresize does."""
    height, width = size
    if height < 1 or width < 1:
        h, w = state.image.shape[:2]
        raise ImageError(f'a {w}x{h} image is too elongated to resize to '
                         f'{width}x{height}')
    h, w = state.image.shape[:2]
    if backend == 'pillow':
        state.image = _pillow_resize(state.image, (width, height),
                                     interpolation)
    elif interpolation in OWN_RESIZES and state.image.dtype == np.uint8:
        state.image = OWN_RESIZES[interpolation](state.image, width, height)
    else:
        state.image = cv2.resize(
            state.image, (width, height),
            interpolation=INTERPOLATIONS[interpolation])
    state.scale_factor = (width / w, height / h)
    state.img_shape = (height, width)


def resize_edge(state: Preprocessed, step: dict):
    """mmpretrain's ResizeEdge: one edge to ``scale``, the other kept in
    proportion (rounded down)."""
    h, w = state.image.shape[:2]
    edge, scale = step['edge'], step['scale']
    if ((edge == 'short' and w < h) or (edge == 'long' and w > h)
            or edge == 'width'):
        size = (int(scale * h / w), scale)
    else:
        size = (scale, int(scale * w / h))
    _resize(state, size, step['interpolation'], step.get('backend', 'cv2'))


def resize(state: Preprocessed, step: dict):
    """mmcv's Resize to [height, width], or within it keeping the aspect
    ratio (mmcv.imrescale's rounding)."""
    height, width = step['size']
    if step.get('keep_ratio'):
        h, w = state.image.shape[:2]
        factor = min(
            max(height, width) / max(h, w),
            min(height, width) / min(h, w))
        height, width = int(h * factor + 0.5), int(w * factor + 0.5)
    _resize(state, (height, width), step['interpolation'],
            step.get('backend', 'cv2'))


def center_crop(state: Preprocessed, step: dict):
    """mmcv's CenterCrop (Python's rounding of the offsets)."""
    crop_h, crop_w = step['size']
    h, w = state.image.shape[:2]
    if crop_h > h or crop_w > w:
        raise ImageError(f'the image is {w}x{h} after resizing, smaller '
                         f'than the {crop_w}x{crop_h} center crop')
    y1 = max(0, int(round((h - crop_h) / 2.)))
    x1 = max(0, int(round((w - crop_w) / 2.)))
    state.image = state.image[y1:y1 + crop_h, x1:x1 + crop_w]
    state.img_shape = (crop_h, crop_w)


def normalize(state: Preprocessed, step: dict):
    """To float32 (3, H, W): channel flip if ``to_rgb``, then
    (x - mean) / std, as the data preprocessors do."""
    image = state.image.astype(np.float32)
    if step.get('to_rgb'):
        image = image[..., ::-1]
    mean = np.asarray(step['mean'], np.float32)
    std = np.asarray(step['std'], np.float32)
    state.input = np.ascontiguousarray(
        ((image - mean) / std).transpose(2, 0, 1))


def pad(state: Preprocessed, step: dict):
    """Pad bottom and right to a fixed [height, width] or to multiples of
    ``size_divisor``, after normalization (as the data preprocessors do)."""
    _, h, w = state.input.shape
    if step.get('size'):
        height, width = step['size']
    else:
        divisor = step['size_divisor']
        height = -(-h // divisor) * divisor
        width = -(-w // divisor) * divisor
    if h > height or w > width:
        raise ImageError(f'the preprocessed image is {w}x{h}, larger than '
                         f'the padded size {width}x{height}')
    state.input = np.pad(
        state.input, ((0, 0), (0, height - h), (0, width - w)),
        constant_values=step.get('value', 0))


STEPS = {
    'resize_edge': resize_edge,
    'resize': resize,
    'center_crop': center_crop,
    'normalize': normalize,
    'pad': pad,
}


def preprocess(image: Union[str, os.PathLike, np.ndarray],
               steps: List[dict]) -> Preprocessed:
    """Load ``image`` and apply a bundle's preprocessing ``steps``."""
    if not steps or steps[0].get('type') != 'load':
        raise ValueError("the preprocessing must start with a 'load' step")
    state = Preprocessed(load_image(image))
    for step in steps[1:]:
        if step['type'] not in STEPS:
            raise ValueError(f'unknown preprocessing step {step["type"]!r}')
        STEPS[step['type']](state, step)
    if state.input is None:
        raise ValueError("the preprocessing has no 'normalize' step")
    return state
