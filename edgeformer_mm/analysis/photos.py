"""Real photos for checks without a data set: the ones scikit-image ships in
its wheel (no download), split into a test set and a disjoint calibration
set for int8 quantization."""
import os
import os.path as osp
import shutil
from typing import List, Sequence

# Colour photos of objects, animals, people and scenes: what is compared.
TEST_PHOTOS = ('astronaut.png', 'coffee.png', 'chelsea.png', 'rocket.jpg',
               'hubble_deep_field.jpg', 'retina.jpg', 'ihc.png',
               'motorcycle_left.png')
# Other photos (many grey, some textures): what int8 is calibrated on.
CALIBRATION_PHOTOS = ('camera.png', 'coins.png', 'page.png', 'text.png',
                      'brick.png', 'grass.png', 'gravel.png', 'moon.png',
                      'horse.png', 'clock_motion.png', 'color.png',
                      'motorcycle_right.png')


def copy_photos(names: Sequence[str], directory: str) -> List[str]:
    """Copy scikit-image's photos ``names`` into ``directory``; their new
    paths."""
    from skimage import data
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name in names:
        path = osp.join(directory, name)
        shutil.copyfile(osp.join(data.data_dir, name), path)
        paths.append(path)
    return paths
