from importlib.util import find_spec

from .backbones import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403

# mmdet is an optional extra ('det'); the classifiers do not need it.
if find_spec('mmdet') is not None:
    from .dense_heads import *  # noqa: F401,F403
