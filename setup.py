from setuptools import find_packages, setup


def get_version():
    scope = {}
    with open('edgeformer_mm/version.py') as f:
        exec(f.read(), scope)
    return scope['__version__']


with open('README.md', encoding='utf-8') as f:
    long_description = f.read()

setup(
    name='edgeformer_mm',
    version=get_version(),
    description='EdgeFormer (ParC-Net, ECCV 2022) backbones for the OpenMMLab '
    'ecosystem: mmpretrain, mmdet and mmseg',
    long_description=long_description,
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    packages=find_packages(exclude=('tests', 'tests.*', 'tools', 'configs')),
    python_requires='>=3.8',
    # mmcv needs its compiled ops (mmcv.ops) for mmdet and mmseg; mmcv-lite
    # is not enough. mmdet 3.3 and mmseg 1.2 refuse mmcv >= 2.2.
    install_requires=[
        'torch>=2.0',
        'torchvision',  # imported by mmpretrain, which does not declare it
        'mmcv>=2.0.0,<2.2.0',
        'mmengine>=0.10.0,<1.0.0',
        'mmpretrain>=1.2.0,<1.3.0',
        'setuptools<82',  # mmengine imports pkg_resources at run time
    ],
    extras_require={
        'det': ['mmdet>=3.3.0,<3.4.0'],
        'seg': ['mmsegmentation>=1.2.2,<1.3.0', 'ftfy', 'regex'],
        'all': [
            'mmdet>=3.3.0,<3.4.0', 'mmsegmentation>=1.2.2,<1.3.0', 'ftfy',
            'regex'
        ],
        'deploy': ['mmdeploy==1.3.1', 'onnxruntime', 'pnnx', 'ncnn'],
        'tests': ['pytest', 'scikit-image'],
    },
    zip_safe=False,
)
