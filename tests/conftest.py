"""Fixtures shared by several test files."""
import os.path as osp

import pytest
import torch
from helpers import REPO, calibrate

from edgeformer_mm.datasets.synthetic import make_tiny_shapes
from edgeformer_mm.utils import build_model


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    """A small tiny-shapes classification set: 4 classes, 4 training and 2
    validation images each, 32x32."""
    return make_tiny_shapes(
        str(tmp_path_factory.mktemp('data') / 'tiny_shapes'),
        num_train_per_class=4,
        num_val_per_class=2,
        image_size=32)


@pytest.fixture(scope='session')
def calibrated_checkpoint(tmp_path_factory):
    """A function from a model config (a path, absolute or from the
    repository's root) to a checkpoint of that model with calibrated random
    weights (see ``helpers.calibrate``), made once for the whole session."""
    root = tmp_path_factory.mktemp('calibrated')
    made = {}

    def checkpoint(config):
        config = osp.normpath(osp.join(REPO, config))
        if config not in made:
            torch.manual_seed(0)  # the same weights whatever ran before
            model = calibrate(build_model(config))
            name = osp.splitext(osp.basename(config))[0]
            made[config] = str(root / f'{name}.pth')
            torch.save(
                dict(meta=dict(), state_dict=model.state_dict()),
                made[config])
        return made[config]

    return checkpoint
