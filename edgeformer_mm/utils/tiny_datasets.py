"""Small synthetic data sets generated on the fly, for demos and tests.

Nothing is downloaded: images are drawn with OpenCV from a seeded random
generator, so the same arguments always give the same files.
"""
import os.path as osp
from pathlib import Path

import cv2
import numpy as np

SHAPE_CLASSES = ('circle', 'square', 'triangle', 'cross')


def _textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour blotches, faint stripes and noise: no shape cues."""
    coarse = rng.uniform(70, 180, size=(4, 4, 3)).astype(np.float32)
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(4, 12)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi /
                     period)
    image += rng.uniform(0, 12) * stripes[..., None]
    image += rng.normal(0, 4, size=image.shape)
    return image


def draw_shape(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """A BGR uint8 image of the shape ``SHAPE_CLASSES[label]``.

    The shape has a random size, position, rotation and colour on a textured
    background, so only its outline tells the classes apart.
    """
    image = _textured_background(rng, size)
    radius = rng.uniform(0.15, 0.3) * size
    centre = rng.uniform(radius + 1, size - radius - 1, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    # Dark or bright, so that the shape stands out from the background.
    low, high = (0, 50) if rng.random() < 0.5 else (205, 255)
    colour = tuple(float(c) for c in rng.uniform(low, high, size=3))
    name = SHAPE_CLASSES[label]
    if name == 'circle':
        cv2.circle(image, tuple(int(round(c)) for c in centre),
                   int(round(radius)), colour, -1, cv2.LINE_AA)
    else:
        if name == 'square':
            corners = [angle + k * np.pi / 2 for k in range(4)]
            outline = [(np.cos(a), np.sin(a)) for a in corners]
        elif name == 'triangle':
            corners = [angle + k * 2 * np.pi / 3 for k in range(3)]
            outline = [(np.cos(a), np.sin(a)) for a in corners]
        else:  # a plus sign: 12 corners of two crossing bars
            arm, half = 1.0, 0.3
            outline = [(half, arm), (half, half), (arm, half), (arm, -half),
                       (half, -half), (half, -arm), (-half, -arm),
                       (-half, -half), (-arm, -half), (-arm, half),
                       (-half, half), (-half, arm)]
            rotation = np.array([[np.cos(angle), -np.sin(angle)],
                                 [np.sin(angle), np.cos(angle)]])
            outline = [tuple(rotation @ np.array(p)) for p in outline]
        points = np.array([centre + radius * np.array(p) for p in outline])
        cv2.fillPoly(image, [np.round(points * 16).astype(np.int32)], colour,
                     cv2.LINE_AA, shift=4)
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
