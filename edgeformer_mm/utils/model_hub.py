"""EdgeFormer and ParC ConvNet model names for mmpretrain's model hub.

``import edgeformer_mm`` registers the models of the metafiles that
``model-index.yml`` lists (``configs/mmpretrain/edgeformer/`` and
``configs/mmpretrain/parc_convnets/``) with mmpretrain's ``ModelHub``, so
``list_models('edgeformer*')``, ``list_models('parc*')``,
``get_model(name)`` and ``inference_model(name, ...)`` work as for
mmpretrain's own models.

No weights can be downloaded, so the metafiles name their weights
``edgeformer-mm://<file>``: a checkpoint scheme that loads ``<file>`` from
the local checkpoint folder (``$EDGEFORMER_MM_CHECKPOINTS``, default
``~/.cache/edgeformer_mm/checkpoints``) and otherwise says where to put it.
"""
import os
import os.path as osp
from pathlib import Path

from mmengine.runner import CheckpointLoader

SCHEME = 'edgeformer-mm://'
MODEL_INDEX = Path(__file__).resolve().parents[2] / 'model-index.yml'


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
            f'weights must be converted first, see the README), or pass '
            f'the path of a local checkpoint as `pretrained=`.')
    return CheckpointLoader.load_checkpoint(path, map_location)


def register_models():
    """Register the metafile's models with mmpretrain's ModelHub, once.

    Does nothing if the configs are not next to the package (an install that
    is not editable).
    """
    from mmpretrain.apis import ModelHub
    if not MODEL_INDEX.is_file() or ModelHub.has('edgeformer-s_8xb128_in1k'):
        return
    ModelHub.register_model_index(MODEL_INDEX)
