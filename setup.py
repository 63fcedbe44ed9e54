import os
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

REPO = Path(__file__).resolve().parent
PACKAGE = 'edgeformer_mm'
# What OpenMMLab tools look up in <package>/.mim: mmengine resolves
# 'edgeformer_mm::<path>' configs in .mim/configs and reads
# .mim/model-index.yml, mmpretrain's model hub gets the model names from it
# (edgeformer_mm/utils/model_hub.py), `mim train/test` run .mim/tools.
MIM_ENTRIES = ('configs', 'model-index.yml', 'tools')
# Scripts that only make sense in a checkout (they build its .venv and run
# its demo in its data/ and work_dirs/): left out of an installed package.
CHECKOUT_ONLY_TOOLS = ('setup_env.sh', 'end_to_end_demo.py')


def get_version():
    scope = {}
    with open(REPO / PACKAGE / 'version.py') as f:
        exec(f.read(), scope)
    return scope['__version__']


def link_mim_entries():
    """Editable install: symlink the .mim entries to the checkout's own
    files, so that edits to configs/ show at once."""
    mim = REPO / PACKAGE / '.mim'
    mim.mkdir(exist_ok=True)
    for entry in MIM_ENTRIES:
        link = mim / entry
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.is_dir():
            shutil.rmtree(link)
        link.symlink_to(os.path.relpath(REPO / entry, mim))


def copy_mim_entries(package_dir: Path):
    """Wheel: copy the .mim entries into the built package (never into the
    checkout, whose .mim an editable install links), replacing the copies of
    an earlier build so that deleted configs do not linger."""
    mim = package_dir / '.mim'
    if mim.exists():
        shutil.rmtree(mim)
    mim.mkdir(parents=True)
    ignore = shutil.ignore_patterns('__pycache__', '*.py[co]',
                                    *CHECKOUT_ONLY_TOOLS)
    for entry in MIM_ENTRIES:
        source = REPO / entry
        if source.is_dir():
            shutil.copytree(source, mim / entry, ignore=ignore)
        else:
            shutil.copyfile(source, mim / entry)


class BuildPyWithMim(build_py):
    """build_py that also fills edgeformer_mm/.mim: an editable install
    (PEP 660 runs build_py in editable mode) links it, a wheel gets copies.
    """

    def run(self):
        super().run()
        if self.editable_mode:
            link_mim_entries()
        else:
            copy_mim_entries(Path(self.build_lib) / PACKAGE)


# mmcv needs its compiled ops (mmcv.ops) for mmdet and mmseg; mmcv-lite is not
# enough. mmdet 3.3 and mmseg 1.2 refuse mmcv >= 2.2.
INSTALL_REQUIRES = [
    'torch>=2.0',
    'torchvision',  # imported by mmpretrain, which does not declare it
    'mmcv>=2.0.0,<2.2.0',
    'mmengine>=0.10.0,<1.0.0',
    'mmpretrain>=1.2.0,<1.3.0',
    'setuptools<82',  # mmengine imports pkg_resources at run time
    # Imported by the package itself (mmcv and mmpretrain require them too).
    'numpy',
    'opencv-python',
    'matplotlib',
]
DET_REQUIRES = ['mmdet>=3.3.0,<3.4.0']
# ftfy and regex: imported by mmseg without being declared.
SEG_REQUIRES = ['mmsegmentation>=1.2.2,<1.3.0', 'ftfy', 'regex']
# edgeformer_mm.deployment: ONNX export through mmdeploy (which brings onnx),
# ONNX Runtime, the pnnx converter and the ncnn runtime, MNN; the benchmark
# also times them.
DEPLOY_REQUIRES = [
    'mmdeploy==1.3.1', 'onnxruntime', 'ml_dtypes', 'pnnx', 'ncnn',
    'mmdeploy_runtime==1.3.1', 'mnn==3.6.1'
]
# ExecuTorch (XNNPACK): it links libtorch, so its version goes with torch's
# (1.5.1 with torch 2.14). tools/setup_env.sh installs it without the ~30
# packages it declares and the export does not use.
EXECUTORCH_REQUIRES = ['executorch==1.5.1']
# OpenVINO reads the ONNX files directly. Without openvino-telemetry it
# sends no usage event: pip install --no-deps openvino (as
# tools/setup_env.sh does) rather than this extra where that matters.
OPENVINO_REQUIRES = ['openvino']
# The test suite covers detection, segmentation and deployment, imports onnx
# itself and reads scikit-image's photos.
TESTS_REQUIRES = [
    'pytest', 'scikit-image', 'onnx', *DET_REQUIRES, *SEG_REQUIRES,
    *DEPLOY_REQUIRES
]

setup(
    name=PACKAGE,
    version=get_version(),
    description='EdgeFormer (ParC-Net, ECCV 2022) backbones for the OpenMMLab '
    'ecosystem: mmpretrain, mmdet and mmseg',
    long_description=(REPO / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    packages=find_packages(include=(PACKAGE, f'{PACKAGE}.*')),
    python_requires='>=3.8',
    install_requires=INSTALL_REQUIRES,
    extras_require={
        'det': DET_REQUIRES,
        'seg': SEG_REQUIRES,
        'all': DET_REQUIRES + SEG_REQUIRES,
        'deploy': DEPLOY_REQUIRES,
        'executorch': EXECUTORCH_REQUIRES,
        'openvino': OPENVINO_REQUIRES,
        'tests': TESTS_REQUIRES,
    },
    cmdclass={'build_py': BuildPyWithMim},
    zip_safe=False,
)
