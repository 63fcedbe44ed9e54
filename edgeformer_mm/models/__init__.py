from importlib.util import find_spec

from .backbones import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403

# mmdet and mmseg are optional extras ('det', 'seg'); the classifiers do
# not need them.
if find_spec('mmdet') is not None:
    from .dense_heads import *  # noqa: F401,F403
if find_spec('mmseg') is not None:
    from .decode_heads import *  # noqa: F401,F403
