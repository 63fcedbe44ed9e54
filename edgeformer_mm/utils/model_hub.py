"""EdgeFormer and ParC ConvNet model names for mmpretrain's model hub, and
configs by name for mmengine.

``import edgeformer_mm`` registers the models of the metafiles that
``model-index.yml`` lists (``configs/mmpretrain/edgeformer/`` and
``configs/mmpretrain/parc_convnets/``) with mmpretrain's ``ModelHub``, so
``list_models('edgeformer*')``, ``list_models('parc*')``,
``get_model(name)`` and ``inference_model(name, ...)`` work as for
mmpretrain's own models. An installed package carries ``model-index.yml``
and the configs in ``edgeformer_mm/.mim/`` (see setup.py), a checkout has
them at its root; each metafile's ``Config:`` paths are relative to the
metafile, so they resolve in both. It also lets mmengine find the configs
of an installed package by name: ``mmengine.hub.get_config(
'edgeformer_mm::mmdet/ssdlite_edgeformer_s_coco.py')`` or
``_base_ = 'edgeformer_mm::<path under configs/>'``.

No weights can be downloaded, so the metafiles name their weights
``edgeformer-mm://<file>``: a checkpoint scheme that loads ``<file>`` from
the local checkpoint folder (``$EDGEFORMER_MM_CHECKPOINTS``, default
``~/.cache/edgeformer_mm/checkpoints``) and otherwise says where to put it.
"""
import os
import os.path as osp
import warnings
from pathlib import Path
from typing import Optional

from mmengine.config.utils import MODULE2PACKAGE
from mmengine.runner import CheckpointLoader

SCHEME = 'edgeformer-mm://'
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# The installed package's copy (a link in an editable install), then the
# checkout's own file (the package imported from a checkout not installed).
MODEL_INDEX_CANDIDATES = (PACKAGE_DIR / '.mim' / 'model-index.yml',
                          PACKAGE_DIR.parent / 'model-index.yml')

# mmengine resolves 'package::path' configs (``mmengine.hub.get_config``,
# ``_base_``) through <package>/.mim/configs, but only for the packages in
# this table; the package name is the module name.
MODULE2PACKAGE.setdefault('edgeformer_mm', 'edgeformer_mm')


def checkpoint_dir() -> str:
    """The folder where ``edgeformer-mm://`` checkpoints are looked up."""
    return os.environ.get(
        'EDGEFORMER_MM_CHECKPOINTS',
        osp.join(osp.expanduser('~'), '.cache', 'edgeformer_mm',
                 'checkpoints'))


@CheckpointLoader.register_scheme(prefixes=SCHEME)
def load_from_edgeformer_mm(filename: str, map_location=None):
    """Load ``edgeformer-mm://<file>`` from :func:`checkpoint_dir`."""
    name = filename[len(SCHEME):]
    path = osp.join(checkpoint_dir(), name)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'No pretrained weights for {osp.splitext(name)[0]} are '
            f'published for download. Put a checkpoint at {path} (set '
            f'EDGEFORMER_MM_CHECKPOINTS to use another folder; official '
            f'weights must be converted first, see '
            f'docs/official_checkpoints.md), or pass the path of a local '
            f'checkpoint as `pretrained=`.')
    return CheckpointLoader.load_checkpoint(path, map_location)


def find_model_index() -> Optional[Path]:
    """The ``model-index.yml`` of the installed package or the checkout."""
    return next((path for path in MODEL_INDEX_CANDIDATES if path.is_file()),
                None)


def register_models():
    """Register the metafiles' models with mmpretrain's ModelHub, once.

    ``config_prefix`` is left unset: mmpretrain then resolves each model's
    ``Config:`` relative to its metafile.
    """
    from mmpretrain.apis import ModelHub
    if ModelHub.has('edgeformer-s_8xb128_in1k'):
        return
    model_index = find_model_index()
    if model_index is None:
        warnings.warn(
            'edgeformer_mm: no model-index.yml in the package '
            f'({MODEL_INDEX_CANDIDATES[0]}) or the checkout '
            f'({MODEL_INDEX_CANDIDATES[1]}), so the EdgeFormer and ParC model '
            'names are not registered with mmpretrain; install the package '
            'with pip from a checkout (`pip install .` or `pip install -e .`)')
        return
    ModelHub.register_model_index(model_index)
