"""The wheel: what it carries in edgeformer_mm/.mim, what it declares, and a
non-editable install of it used from outside the checkout.

The wheel is built from a copy of the checkout (an in-tree build would write
build/ and *.egg-info into it) and installed into a fresh virtual
environment whose only other path is the site-packages of the environment
running the tests (the OpenMMLab stack), added by a plain .pth line: the
.pth files in there, among them the finder of an editable install of
edgeformer_mm, are not run, so the checkout's package stays out of sight.
"""
import email
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest
import yaml
from helpers import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.slow

# Top-level entries of a checkout that are no input of the build: version
# control, the environment, and what builds, runs and tests write.
NOT_BUILD_INPUTS = ('.git', '.venv', 'build', 'dist', 'data', 'work_dirs',
                    'outputs', '.pytest_cache')
GENERATED_ANYWHERE = ('__pycache__', '*.egg-info', '.mim')
MIM = PurePosixPath('edgeformer_mm/.mim')
# Where each requirements file's packages must be declared (None: the
# package's own install_requires).
REQUIREMENTS_FILES = {
    'openmmlab.txt': (None, 'all'),
    'deploy.txt': ('deploy', ),
    'tests.txt': ('tests', ),
}

# Run by the installed package's interpreter from outside the checkout;
# writes what it found to found.json, paths with symlinks resolved.
USE_THE_INSTALLED_PACKAGE = '''
import json
from os.path import realpath
import numpy as np
import edgeformer_mm
from mmengine import Config
from mmengine.hub import get_config
from mmengine.utils import get_installed_path
from mmpretrain import get_model, inference_model, list_models
from mmpretrain.apis import ModelHub

found = dict(
    module=realpath(edgeformer_mm.__file__),
    installed_path=realpath(get_installed_path('edgeformer_mm')),
    edgeformer_names=list_models('edgeformer*'),
    parc_names=list_models('parc*'),
    s_config=realpath(
        ModelHub.get('edgeformer-s_8xb128_in1k').config.filename))
model = get_model('edgeformer-s_8xb128_in1k')
found['s_params'] = sum(p.numel() for p in model.parameters())
image = np.random.RandomState(0).randint(0, 256, (72, 96, 3), np.uint8)
result = inference_model('edgeformer-xs_8xb128_in1k', image, pretrained=False)
found['xs_scores'] = list(result['pred_scores'].shape)
for name in ('mmdet/ssdlite_edgeformer_s_coco.py',
             'mmseg/deeplabv3_edgeformer_s_voc12aug-512x512.py'):
    cfg = get_config('edgeformer_mm::' + name)
    found[name] = dict(
        file=realpath(cfg.filename), backbone=cfg.model.backbone.type,
        dataset=cfg.dataset_type, runtime='default_hooks' in cfg)
with open('inherits.py', 'w') as f:
    f.write("_base_ = 'edgeformer_mm::mmdet/ssdlite_edgeformer_s_coco.py'")
cfg = Config.fromfile('inherits.py')
found['inherits'] = dict(backbone=cfg.model.backbone.type,
                         dataset=cfg.dataset_type)
with open('found.json', 'w') as f:
    json.dump(found, f)
'''


def ignore_non_inputs(directory, names):
    ignored = set(
        shutil.ignore_patterns(*GENERATED_ANYWHERE)(directory, names))
    if Path(directory) == Path(REPO):
        ignored.update(set(names) & set(NOT_BUILD_INPUTS))
    return ignored


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    source = tmp_path_factory.mktemp('checkout') / 'edgeformer_mm'
    shutil.copytree(REPO, source, ignore=ignore_non_inputs)
    dist = tmp_path_factory.mktemp('dist')
    pip_wheel = [
        sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
        '--no-build-isolation', '--disable-pip-version-check', '-w', dist
    ]
    subprocess.run(pip_wheel + [source], check=True)
    wheels = list(dist.glob('edgeformer_mm-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope='module')
def wheel_files(wheel):
    with zipfile.ZipFile(wheel) as archive:
        return {
            PurePosixPath(name): archive.read(name)
            for name in archive.namelist()
        }


def checkout_files(top):
    return {
        path.relative_to(REPO).as_posix()
        for path in Path(REPO, top).rglob('*')
        if path.is_file() and '__pycache__' not in path.parts
    }


def dist_info(wheel_files):
    """The wheel's ``edgeformer_mm-<version>.dist-info`` folder."""
    [name] = {
        name.parts[0]
        for name in wheel_files if name.parts[0].endswith('.dist-info')
    }
    return PurePosixPath(name)


def test_wheel_carries_the_configs_and_metafiles_in_mim(wheel_files):
    top_level = {name.parts[0] for name in wheel_files}
    assert top_level == {'edgeformer_mm', dist_info(wheel_files).name}
    in_mim = {
        name.relative_to(MIM).as_posix()
        for name in wheel_files if MIM in name.parents
    }
    assert checkout_files('configs') <= in_mim
    assert 'model-index.yml' in in_mim
    assert {'tools/train.py', 'tools/test.py', 'tools/deploy.py'} <= in_mim
    # They build the checkout's .venv and run its demo.
    assert not {'tools/setup_env.sh', 'tools/end_to_end_demo.py'} & in_mim

    # Every metafile the index imports is there, and so is every config
    # that a metafile names (relative to the metafile, as the model hub
    # resolves it).
    index = yaml.safe_load(wheel_files[MIM / 'model-index.yml'])
    for metafile in index['Import']:
        assert MIM / metafile in wheel_files
        models = yaml.safe_load(wheel_files[MIM / metafile])['Models']
        assert models
        for model in models:
            config = MIM / PurePosixPath(metafile).parent / model['Config']
            assert config in wheel_files, model['Name']


def declared_requirements(wheel_files):
    """{extra (None: install_requires): {name: Requirement}} of the
    wheel's METADATA."""
    metadata_file = dist_info(wheel_files) / 'METADATA'
    metadata = email.message_from_bytes(wheel_files[metadata_file])
    declared = {None: {}}
    for extra in metadata.get_all('Provides-Extra'):
        declared[extra] = {}
    for line in metadata.get_all('Requires-Dist'):
        requirement = Requirement(line)
        extras = [
            extra for extra in declared
            if extra is not None and requirement.marker is not None
            and requirement.marker.evaluate({'extra': extra})
        ]
        requirement.marker = None
        for extra in extras or [None]:
            declared[extra][canonicalize_name(requirement.name)] = requirement
    return declared


def test_extras_declare_what_the_code_and_tests_import(wheel_files):
    declared = declared_requirements(wheel_files)
    assert set(declared) == {
        None, 'det', 'seg', 'all', 'deploy', 'executorch', 'openvino', 'tests'
    }
    assert {'torch', 'mmcv', 'mmengine', 'mmpretrain'} <= set(declared[None])
    assert set(declared['all']) == set(declared['det']) | set(declared['seg'])
    # edgeformer_mm.deployment and the benchmark.
    deploy = {'mmdeploy', 'onnxruntime', 'pnnx', 'ncnn', 'mnn'}
    assert deploy <= set(declared['deploy'])
    assert set(declared['executorch']) == {'executorch'}
    assert set(declared['openvino']) == {'openvino'}
    # The test suite also imports mmdet, mmseg and onnx, and reads
    # scikit-image's photos.
    tests = {'pytest', 'scikit-image', 'onnx', 'mmdet', 'mmsegmentation'}
    assert tests | deploy <= set(declared['tests'])


@pytest.mark.parametrize('filename', sorted(REQUIREMENTS_FILES))
def test_requirements_files_agree_with_the_wheel(wheel_files, filename):
    """Each package of requirements/<filename> is declared where it belongs,
    and each exact pin there satisfies the declared version range."""
    declared = declared_requirements(wheel_files)
    where = REQUIREMENTS_FILES[filename]
    lines = Path(REPO, 'requirements', filename).read_text().splitlines()
    for line in filter(None, (line.split('#')[0].strip() for line in lines)):
        pinned = Requirement(line)
        name = canonicalize_name(pinned.name)
        declaring = [
            declared[extra][name] for extra in where if name in declared[extra]
        ]
        assert declaring, f'{line} ({filename}) is not declared in {where}'
        for spec in pinned.specifier:
            if spec.operator == '==':
                assert all(
                    requirement.specifier.contains(spec.version)
                    for requirement in declaring), (line, declaring)


@pytest.fixture(scope='module')
def installed_venv(wheel, tmp_path_factory):
    """A fresh virtual environment with the wheel installed, seeing the
    OpenMMLab stack of this environment; its interpreter and
    site-packages."""
    venv = tmp_path_factory.mktemp('venv')
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', venv],
                   check=True)
    python = venv / 'bin' / 'python'
    print_purelib = 'import sysconfig; print(sysconfig.get_path("purelib"))'
    purelib = Path(
        subprocess.run([python, '-c', print_purelib],
                       capture_output=True,
                       text=True,
                       check=True).stdout.strip())
    stack = '\n'.join(site.getsitepackages())
    (purelib / 'openmmlab_stack.pth').write_text(stack + '\n')
    pip_install = [
        sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
        '--no-index', '--disable-pip-version-check', '--target', purelib
    ]
    subprocess.run(pip_install + [wheel], check=True)
    return python, purelib


def test_installed_wheel_serves_model_names_and_configs(
        installed_venv, tmp_path):
    python, purelib = installed_venv
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    run = subprocess.run([python, '-c', USE_THE_INSTALLED_PACKAGE],
                         cwd=tmp_path,
                         env=env,
                         capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    # A file, not stdout: inference_model draws a progress bar there.
    found = json.loads((tmp_path / 'found.json').read_text())

    package = (purelib / 'edgeformer_mm').resolve()
    assert Path(found['module']).parent == package
    assert Path(found['installed_path']) == package
    assert found['edgeformer_names'] == [
        'edgeformer-h_8xb128_in1k', 'edgeformer-s_8xb128_in1k',
        'edgeformer-xs_8xb128_in1k'
    ]
    assert found['parc_names'] == [
        'parc-convnext-xt_32xb128_in1k', 'parc-mobilenet-v2_32xb128_in1k',
        'parc-resnet50_32xb128_in1k'
    ]
    mim_configs = package / '.mim' / 'configs'
    assert Path(found['s_config']) == (
        mim_configs / 'mmpretrain/edgeformer/edgeformer-s_8xb128_in1k.py')
    assert found['s_params'] == 5_037_088
    assert found['xs_scores'] == [1000]
    # Found by name in .mim, with their mmdet:: / mmseg:: bases resolved.
    assert found['mmdet/ssdlite_edgeformer_s_coco.py'] == dict(
        file=str(mim_configs / 'mmdet/ssdlite_edgeformer_s_coco.py'),
        backbone='EdgeFormer',
        dataset='CocoDataset',
        runtime=True)
    assert found['mmseg/deeplabv3_edgeformer_s_voc12aug-512x512.py'] == dict(
        file=str(mim_configs /
                 'mmseg/deeplabv3_edgeformer_s_voc12aug-512x512.py'),
        backbone='EdgeFormer',
        dataset='PascalVOCDataset',
        runtime=True)
    assert found['inherits'] == dict(
        backbone='EdgeFormer', dataset='CocoDataset')
