"""Small synthetic data sets generated on the fly, for demos and tests.

Nothing is downloaded: images are drawn with OpenCV from a seeded random
generator, so the same arguments always give the same files.
"""
import json
import os.path as osp
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import cv2
import numpy as np

SHAPE_CLASSES = ('circle', 'square', 'triangle', 'cross')
# Classes of the segmentation set: its label maps hold these indices.
SEG_CLASSES = ('background', ) + SHAPE_CLASSES
# Colours (RGB) of SEG_CLASSES for mmseg's metainfo: those of the same
# indices in PASCAL VOC.
SEG_PALETTE = ((0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0),
               (0, 0, 128))
# Label of pixels that the segmentation set leaves unannotated.
SEG_IGNORE_INDEX = 255

# Outlines of the polygon classes in the shape's own frame, for a radius of
# 1: the square's and triangle's corners and the ends of the cross's arms
# lie at distance 1 from the centre.
_SQUARE = [(1., 0.), (0., 1.), (-1., 0.), (0., -1.)]
_TRIANGLE = [(np.cos(a), np.sin(a)) for a in np.arange(3) * 2 * np.pi / 3]
# A plus sign: 12 corners of two crossing bars.
_CROSS = [(0.3, 1.), (0.3, 0.3), (1., 0.3), (1., -0.3), (0.3, -0.3),
          (0.3, -1.), (-0.3, -1.), (-0.3, -0.3), (-1., -0.3), (-1., 0.3),
          (-0.3, 0.3), (-0.3, 1.)]
_OUTLINES = dict(square=_SQUARE, triangle=_TRIANGLE, cross=_CROSS)


def _textured_background(rng: np.random.Generator, height: int,
                         width: int) -> np.ndarray:
    """Smooth colour blotches, faint stripes and noise: no shape cues."""
    coarse = rng.uniform(70, 180, size=(4, 4, 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height),
                       interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(4, 12)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi /
                     period)
    image += rng.uniform(0, 12) * stripes[..., None]
    image += rng.normal(0, 4, size=image.shape)
    return image


def _random_colour(rng: np.random.Generator) -> Tuple[float, float, float]:
    """Dark or bright, so that a shape stands out from the background."""
    low, high = (0, 50) if rng.random() < 0.5 else (205, 255)
    return tuple(float(c) for c in rng.uniform(low, high, size=3))


def shape_mask(name: str,
               centre: Sequence[float],
               radius: float,
               angle: float,
               canvas_shape: Tuple[int, int],
               stretch: float = 1.) -> np.ndarray:
    """The pixels covered by one shape, as a boolean ``canvas_shape`` mask.

    Args:
        name (str): One of :data:`SHAPE_CLASSES`.
        centre (Sequence[float]): ``(x, y)`` in pixels; the shape may reach
            beyond the canvas, which clips it.
        radius (float): The circle's radius; the distance from the centre
            to the square's and triangle's corners and to the ends of the
            cross's arms. Before stretching.
        angle (float): Rotation in radians (counter-clockwise in image
            coordinates, y pointing down).
        canvas_shape (tuple[int, int]): ``(height, width)`` of the mask.
        stretch (float): Width over height of the shape in its own frame,
            before the rotation; the area stays that of ``stretch=1``.
            Defaults to 1.

    Returns:
        np.ndarray: Boolean mask, True where the shape is painted.
    """
    # Drawn without anti-aliasing so that every pixel is either the shape's
    # or not, and the mask gives exact tight boxes.
    mask = np.zeros(canvas_shape, np.uint8)
    scale = np.array([np.sqrt(stretch), 1 / np.sqrt(stretch)])
    if name == 'circle' and stretch == 1:
        # cv2.circle, not a round ellipse: keeps the tiny shapes images as
        # they were first generated.
        cv2.circle(mask, tuple(int(round(c)) for c in centre),
                   int(round(radius)), 1, -1, cv2.LINE_8)
    elif name == 'circle':
        axes = tuple(int(round(a * 16)) for a in radius * scale)
        cv2.ellipse(mask, tuple(int(round(c * 16)) for c in centre), axes,
                    np.degrees(angle), 0, 360, 1, -1, cv2.LINE_8, shift=4)
    else:
        rotation = np.array([[np.cos(angle), -np.sin(angle)],
                             [np.sin(angle), np.cos(angle)]])
        outline = np.array(_OUTLINES[name]) * scale
        points = np.asarray(centre) + radius * outline @ rotation.T
        cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 1,
                     cv2.LINE_8, shift=4)
    return mask.astype(bool)


def draw_shape(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """A BGR uint8 image of the shape ``SHAPE_CLASSES[label]``.

    The shape has a random size, position, rotation and colour on a textured
    background, so only its outline tells the classes apart.
    """
    image = _textured_background(rng, size, size)
    radius = rng.uniform(0.15, 0.3) * size
    centre = rng.uniform(radius + 1, size - radius - 1, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    colour = _random_colour(rng)
    image[shape_mask(SHAPE_CLASSES[label], centre, radius, angle,
                     (size, size))] = colour
    return np.clip(image, 0, 255).astype(np.uint8)


def make_tiny_shapes(root: str,
                     num_train_per_class: int = 300,
                     num_val_per_class: int = 50,
                     image_size: int = 64,
                     seed: int = 0) -> str:
    """Write the tiny shapes classification set in ImageNet layout.

    Layout (mmpretrain ``CustomDataset`` / ``ImageNet`` format)::

        root/classes.txt                    one class name a line
        root/train/<class>/<class>_0000.png
        root/val/<class>/<class>_0000.png
        root/meta/train.txt                 '<class>/<file> <label>' lines
        root/meta/val.txt

    Returns:
        str: ``root``.
    """
    rng = np.random.default_rng(seed)
    root_path = Path(root)
    (root_path / 'meta').mkdir(parents=True, exist_ok=True)
    (root_path / 'classes.txt').write_text('\n'.join(SHAPE_CLASSES) + '\n')
    for split, per_class in (('train', num_train_per_class),
                             ('val', num_val_per_class)):
        lines = []
        for label, name in enumerate(SHAPE_CLASSES):
            (root_path / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                filename = f'{name}/{name}_{i:04d}.png'
                image = draw_shape(rng, label, image_size)
                cv2.imwrite(osp.join(root, split, filename), image)
                lines.append(f'{filename} {label}')
        (root_path / 'meta' / f'{split}.txt').write_text('\n'.join(lines) +
                                                         '\n')
    return root


def _place_objects(rng: np.random.Generator, height: int, width: int,
                   num_objects: int
                   ) -> List[Tuple[int, np.ndarray, Tuple[float, ...]]]:
    """Random shapes painted in turn, each over the ones before.

    A candidate is redrawn (up to 20 times, else dropped) when less than
    40% of it lies inside the image or when it would hide more than half of
    what is still visible of an earlier shape: objects cross the border and
    overlap, yet every annotated object stays recognisable.

    Returns:
        list[tuple[int, np.ndarray, tuple]]: ``(label, visible mask,
        colour)`` per object, in painting order.
    """
    objects = []
    for _ in range(num_objects):
        for _ in range(20):
            label = int(rng.integers(len(SHAPE_CLASSES)))
            radius = rng.uniform(0.08, 0.25) * min(height, width)
            # Half the shapes are stretched, up to 1.8:1 either way.
            stretch = 1. if rng.random() < 0.5 else float(
                np.exp(rng.uniform(-np.log(1.8), np.log(1.8))))
            # Centres keep off the outer tenth so that about a third of the
            # objects, not most, reach the border.
            centre = rng.uniform((0.1 * width, 0.1 * height),
                                 (0.9 * width, 0.9 * height))
            angle = rng.uniform(0, 2 * np.pi)
            # Drawn on a padded canvas to know how much the border clips;
            # stretched or not, no shape reaches 1.4 radius from its centre.
            pad = int(np.ceil(1.4 * radius))
            full = shape_mask(SHAPE_CLASSES[label], centre + pad, radius,
                              angle, (height + 2 * pad, width + 2 * pad),
                              stretch)
            mask = full[pad:pad + height, pad:pad + width]
            if mask.sum() < 0.4 * full.sum():
                continue
            if any((visible & ~mask).sum() < 0.5 * visible.sum()
                   for _, visible, _ in objects):
                continue
            objects = [(other, visible & ~mask, colour)
                       for other, visible, colour in objects]
            objects.append((label, mask, _random_colour(rng)))
            break
    return objects


def _size(image_size: Union[int, Tuple[int, int]]) -> Tuple[int, int]:
    """``(height, width)`` of an ``image_size`` argument."""
    return ((image_size, image_size) if isinstance(image_size, int) else
            tuple(image_size))


def _random_scene(rng: np.random.Generator, height: int,
                  width: int) -> Tuple[np.ndarray, list]:
    """One to five shapes of :func:`_place_objects` on a textured background.

    Returns:
        tuple[np.ndarray, list]: The BGR uint8 image and the objects of
        :func:`_place_objects`.
    """
    image = _textured_background(rng, height, width)
    objects = _place_objects(rng, height, width, int(rng.integers(1, 6)))
    for _, visible, colour in objects:
        image[visible] = colour
    return np.clip(image, 0, 255).astype(np.uint8), objects


def make_tiny_coco(root: str,
                   num_train: int = 200,
                   num_val: int = 50,
                   image_size: Union[int, Tuple[int, int]] = 128,
                   seed: int = 0) -> str:
    """Write the tiny shapes detection set in COCO format.

    Each image holds one to five shapes of :data:`SHAPE_CLASSES` (category
    ids 1 to 4) with random positions, sizes, stretches, rotations and
    colours on a textured background; some cross the image border, some
    overlap (the later painted on top). Layout::

        root/annotations/instances_train.json
        root/annotations/instances_val.json
        root/train/0000.png
        root/val/0000.png

    An annotation's ``bbox`` ``[x, y, w, h]`` is the tight box of the
    object's visible pixels (clipped by the border, minus what later shapes
    hide) and its ``area`` the number of those pixels.

    Args:
        root (str): Output folder.
        num_train (int): Training images. Defaults to 200.
        num_val (int): Validation images. Defaults to 50.
        image_size (int | tuple[int, int]): Side of the square images, or
            ``(height, width)``. Defaults to 128.
        seed (int): Seed of the random generator. Defaults to 0.

    Returns:
        str: ``root``.
    """
    height, width = _size(image_size)
    rng = np.random.default_rng(seed)
    root_path = Path(root)
    (root_path / 'annotations').mkdir(parents=True, exist_ok=True)
    categories = [
        dict(id=label + 1, name=name)
        for label, name in enumerate(SHAPE_CLASSES)
    ]
    for split, num_images in (('train', num_train), ('val', num_val)):
        (root_path / split).mkdir(exist_ok=True)
        images, annotations = [], []
        for index in range(num_images):
            image, objects = _random_scene(rng, height, width)
            image_id = index + 1
            for label, visible, _ in objects:
                ys, xs = np.nonzero(visible)
                x, y = int(xs.min()), int(ys.min())
                annotations.append(
                    dict(
                        id=len(annotations) + 1,
                        image_id=image_id,
                        category_id=label + 1,
                        bbox=[x, y, int(xs.max()) + 1 - x,
                              int(ys.max()) + 1 - y],
                        area=int(visible.sum()),
                        iscrowd=0))
            file_name = f'{index:04d}.png'
            cv2.imwrite(osp.join(root, split, file_name), image)
            images.append(
                dict(
                    id=image_id,
                    file_name=file_name,
                    height=height,
                    width=width))
        coco = dict(
            info=dict(description=f'tiny shapes detection set, {split}'),
            images=images,
            annotations=annotations,
            categories=categories)
        (root_path / 'annotations' / f'instances_{split}.json').write_text(
            json.dumps(coco))
    return root


def make_tiny_voc(root: str,
                  num_train: int = 200,
                  num_val: int = 50,
                  image_size: Union[int, Tuple[int, int]] = 128,
                  seed: int = 0) -> str:
    """Write the tiny shapes semantic segmentation set in PASCAL VOC layout.

    The images are the scenes of :func:`make_tiny_coco` for the same
    arguments (one to five shapes with random positions, sizes, stretches,
    rotations and colours on a textured background; some cross the border,
    some overlap, the later painted on top), saved as JPEG of quality 95.
    A label map holds per pixel the index in :data:`SEG_CLASSES` of what is
    visible there: 0 for the background, 1 to 4 for the shapes.

    Like VOC, which marks uncertain pixels with 255, about half the label
    maps leave a band unannotated: along each of one to four random image
    edges, a strip of random width (2 to 6 pixels) is set to
    :data:`SEG_IGNORE_INDEX`, whatever lies beneath. The bands come from a
    second random generator, so the images stay those of the COCO set.
    Layout (mmseg ``PascalVOCDataset``)::

        root/JPEGImages/train_0000.jpg
        root/JPEGImages/val_0000.jpg
        root/SegmentationClass/train_0000.png   single-channel uint8 PNG
        root/SegmentationClass/val_0000.png
        root/ImageSets/Segmentation/train.txt   one image name a line,
        root/ImageSets/Segmentation/val.txt     without suffix

    mmseg's ``PascalVOCDataset`` refuses ``metainfo`` classes that are not
    VOC class names: load the set with a subclass whose ``METAINFO`` is
    ``dict(classes=SEG_CLASSES, palette=SEG_PALETTE)``, or with
    ``BaseSegDataset`` and ``img_suffix='.jpg', seg_map_suffix='.png'``.

    Args:
        root (str): Output folder.
        num_train (int): Training images. Defaults to 200.
        num_val (int): Validation images. Defaults to 50.
        image_size (int | tuple[int, int]): Side of the square images, or
            ``(height, width)``. Defaults to 128.
        seed (int): Seed of the random generators. Defaults to 0.

    Returns:
        str: ``root``.
    """
    height, width = _size(image_size)
    rng = np.random.default_rng(seed)
    band_rng = np.random.default_rng((seed, 1))
    root_path = Path(root)
    for folder in ('JPEGImages', 'SegmentationClass',
                   'ImageSets/Segmentation'):
        (root_path / folder).mkdir(parents=True, exist_ok=True)
    for split, num_images in (('train', num_train), ('val', num_val)):
        names = []
        for index in range(num_images):
            image, objects = _random_scene(rng, height, width)
            seg_map = np.zeros((height, width), np.uint8)
            for label, visible, _ in objects:
                seg_map[visible] = label + 1
            if band_rng.random() < 0.5:
                # One to four edges: the set bits of a number in 1..15.
                edges = int(band_rng.integers(1, 16))
                top, bottom, left, right = (
                    int(w) if edges >> i & 1 else 0
                    for i, w in enumerate(band_rng.integers(2, 7, size=4)))
                seg_map[:top] = SEG_IGNORE_INDEX
                seg_map[height - bottom:] = SEG_IGNORE_INDEX
                seg_map[:, :left] = SEG_IGNORE_INDEX
                seg_map[:, width - right:] = SEG_IGNORE_INDEX
            name = f'{split}_{index:04d}'
            cv2.imwrite(str(root_path / 'JPEGImages' / f'{name}.jpg'),
                        image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(
                str(root_path / 'SegmentationClass' / f'{name}.png'),
                seg_map)
            names.append(name)
        (root_path / 'ImageSets' / 'Segmentation' /
         f'{split}.txt').write_text('\n'.join(names) + '\n')
    return root
