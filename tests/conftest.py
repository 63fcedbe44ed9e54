"""Fixtures shared by several test files."""
import pytest

from edgeformer_mm.datasets.synthetic import make_tiny_shapes


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    """A small tiny-shapes classification set: 4 classes, 4 training and 2
    validation images each, 32x32."""
    return make_tiny_shapes(
        str(tmp_path_factory.mktemp('data') / 'tiny_shapes'),
        num_train_per_class=4,
        num_val_per_class=2,
        image_size=32)
