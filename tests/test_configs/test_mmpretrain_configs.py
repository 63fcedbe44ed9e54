"""mmpretrain integration: configs, training through the Runner, resume,
EMA, the model hub and inference."""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from helpers import shorten_to_one_epoch

import edgeformer_mm  # noqa: F401
from edgeformer_mm.utils import build_runner

CONFIGS = 'configs/mmpretrain/edgeformer'
TINY = f'{CONFIGS}/edgeformer-xs_1xb32_tiny-shapes.py'
OFFICIAL_PARAMS = {'xs': 2_185_384, 's': 5_037_088, 'h': 20_403_940}


def tiny_cfg(root, work_dir, deterministic=False):
    """The demo config on the small test set: 2 iterations an epoch."""
    cfg = Config.fromfile(TINY)
    classes = osp.join(root, 'classes.txt')
    train_set = cfg.train_dataloader.dataset.dataset
    train_set.update(data_root=root, classes=classes)
    cfg.train_dataloader.update(batch_size=8, num_workers=0,
                                persistent_workers=False)
    cfg.train_dataloader.batch_sampler.update(crop_sizes=(32, ),
                                              base_crop_size=32)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.update(batch_size=4, num_workers=0, persistent_workers=False)
        loader.dataset.update(data_root=root, classes=classes)
    shorten_to_one_epoch(cfg, work_dir)
    if deterministic:
        # No dropout and a fixed pipeline: everything random is in the
        # seeded sampler, so two runs can be compared exactly.
        cfg.model.backbone.ffn_drop_rate = 0.
        cfg.model.head.dropout_rate = 0.
        train_set.pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=32),
            dict(type='PackInputs')
        ]
        cfg.randomness = dict(seed=0, deterministic=True)
    return cfg


@pytest.mark.parametrize('arch', ['xs', 's', 'h'])
def test_configs_build_with_official_parameter_counts(arch):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(f'{CONFIGS}/edgeformer-{arch}_8xb128_in1k.py')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[arch]
    assert cfg.model.head.dropout_rate == 0.2
    assert cfg.optim_wrapper.optimizer.weight_decay == (
        0.05 if arch == 'h' else 0.025)


def official_lr(iteration, epoch):
    """The official schedule: linear warm-up, then cosine per epoch."""
    if iteration < 3000:
        return 4e-4 + (4e-3 - 4e-4) * iteration / 3000
    return 4e-4 + 0.5 * (4e-3 - 4e-4) * (1 + math.cos(math.pi * epoch / 300))


def test_recipe_learning_rate_schedule():
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import PARAM_SCHEDULERS
    cfg = Config.fromfile(f'{CONFIGS}/edgeformer-s_8xb128_in1k.py')
    optim_wrapper = build_optim_wrapper(torch.nn.Linear(2, 2),
                                        cfg.optim_wrapper)
    warmup, cosine = (
        PARAM_SCHEDULERS.build(c, default_args=dict(optimizer=optim_wrapper))
        for c in cfg.param_scheduler)
    # ImageNet at 8 x 128 images: 1251 iterations an epoch. The runner steps
    # iteration schedulers every iteration, epoch ones after each epoch.
    iters_per_epoch = 1251
    for epoch in range(300):
        for i in range(iters_per_epoch if epoch < 3 else 1):
            iteration = epoch * iters_per_epoch + i
            lr = optim_wrapper.get_lr()['lr'][0]
            assert lr == pytest.approx(
                official_lr(iteration, epoch), rel=0.01), (epoch, i)
            warmup.step()
        cosine.step()


@pytest.fixture(scope='module')
def trained_runner(tiny_root, tmp_path_factory):
    """The runner of the tiny config after its two iterations; the
    checkpoint epoch_1.pth in its work dir."""
    runner = build_runner(
        tiny_cfg(tiny_root, tmp_path_factory.mktemp('trained')))
    runner.train()
    return runner


@pytest.mark.slow
def test_two_iterations_train_and_val(trained_runner):
    runner = trained_runner
    assert runner.iter == 2
    metrics = runner.val()
    assert 0 <= metrics['accuracy/top1'] <= 100
    checkpoint = torch.load(osp.join(runner.work_dir, 'epoch_1.pth'))
    # The EMA of weights and buffers is saved beside the trained model.
    name = 'backbone.stem.bn.running_mean'
    assert not torch.equal(checkpoint['ema_state_dict'][f'module.{name}'],
                           checkpoint['state_dict'][name])


@pytest.mark.slow
def test_ema_averages_weights_and_buffers_every_iteration(
        tiny_root, tmp_path):
    from mmengine.hooks import Hook

    buffer = 'backbone.stem.bn.running_mean'

    class RecordBuffer(Hook):
        values = []

        def after_train_iter(self, runner, *args, **kwargs):
            self.values.append(runner.model.state_dict()[buffer].clone())

    cfg = tiny_cfg(tiny_root, tmp_path, deterministic=True)
    cfg.optim_wrapper.optimizer.lr = 0.  # the weights keep their start
    runner = build_runner(cfg)
    start = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.register_hook(RecordBuffer())
    runner.train()
    # mmengine's EMAHook saves the averaged model as the checkpoint's
    # state_dict (ready for deployment) and the trained one as ema_state_dict.
    checkpoint = torch.load(tmp_path / 'epoch_1.pth')
    ema = checkpoint['state_dict']

    weight = 'backbone.layer3.1.blocks.0.branch_hw.gcc_1.meta_kernel'
    torch.testing.assert_close(ema[weight], start[weight])
    # mmengine's EMA starts as a copy after the first iteration, then
    # ema = (1 - m) * ema + m * value after each iteration.
    momentum = cfg.custom_hooks[0].momentum
    first, second = RecordBuffer.values
    assert not torch.allclose(first, second)
    torch.testing.assert_close(ema[buffer],
                               (1 - momentum) * first + momentum * second)
    trained = checkpoint['ema_state_dict'][f'module.{buffer}']
    torch.testing.assert_close(trained, second)


@pytest.mark.slow
def test_resume_continues_like_an_uninterrupted_run(tiny_root, tmp_path):
    straight = tiny_cfg(tiny_root, tmp_path / 'straight', deterministic=True)
    straight.train_cfg.max_epochs = 2
    runner = build_runner(straight)
    runner.train()
    expected = torch.load(tmp_path / 'straight' / 'epoch_2.pth')

    # The same run, stopped after its first epoch (nothing in this config
    # depends on max_epochs)...
    first = tiny_cfg(tiny_root, tmp_path / 'resumed', deterministic=True)
    build_runner(first).train()
    # ...and resumed from its checkpoint by a fresh runner.
    resumed = tiny_cfg(tiny_root, tmp_path / 'resumed', deterministic=True)
    resumed.train_cfg.max_epochs = 2
    resumed.resume = True
    runner = build_runner(resumed)
    runner.train()
    assert runner.iter == 4 and runner.epoch == 2
    actual = torch.load(tmp_path / 'resumed' / 'epoch_2.pth')

    for key in ('state_dict', 'ema_state_dict'):
        assert actual[key].keys() == expected[key].keys()
        for name in expected[key]:
            torch.testing.assert_close(actual[key][name],
                                       expected[key][name],
                                       msg=f'{key} {name}')
    assert actual['optimizer']['state'].keys() == \
        expected['optimizer']['state'].keys()
    for index, state in expected['optimizer']['state'].items():
        for name, value in state.items():
            torch.testing.assert_close(actual['optimizer']['state'][index]
                                       [name], value)
    assert actual['param_schedulers'] == expected['param_schedulers']


@pytest.fixture(scope='module')
def xs_checkpoint(tmp_path_factory):
    """An EdgeFormer-XS ImageNet checkpoint (random weights)."""
    from mmpretrain import get_model
    model = get_model('edgeformer-xs_8xb128_in1k')
    path = tmp_path_factory.mktemp('ckpt') / 'xs.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


def test_model_hub_names():
    from mmpretrain import get_model, list_models
    assert list_models('edgeformer*') == [
        'edgeformer-h_8xb128_in1k', 'edgeformer-s_8xb128_in1k',
        'edgeformer-xs_8xb128_in1k'
    ]
    model = get_model('edgeformer-s_8xb128_in1k')
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS['s']
    assert model._metainfo.results[0].task == 'Image Classification'


def test_pretrained_true_says_where_to_put_the_checkpoint(
        tmp_path, monkeypatch):
    from mmpretrain import get_model
    monkeypatch.setenv('EDGEFORMER_MM_CHECKPOINTS', str(tmp_path))
    expected = osp.join(str(tmp_path), 'edgeformer-s_8xb128_in1k.pth')
    with pytest.raises(FileNotFoundError, match=f'Put a checkpoint at '
                       f'{expected}'):
        get_model('edgeformer-s_8xb128_in1k', pretrained=True)


def test_pretrained_true_loads_from_the_checkpoint_folder(
        xs_checkpoint, tmp_path, monkeypatch):
    import shutil

    from mmpretrain import get_model
    shutil.copy(xs_checkpoint, tmp_path / 'edgeformer-xs_8xb128_in1k.pth')
    monkeypatch.setenv('EDGEFORMER_MM_CHECKPOINTS', str(tmp_path))
    model = get_model('edgeformer-xs_8xb128_in1k', pretrained=True)
    expected = torch.load(xs_checkpoint)['state_dict']
    torch.testing.assert_close(model.state_dict()['head.fc.weight'],
                               expected['head.fc.weight'])


def test_inference_model_with_a_local_checkpoint(xs_checkpoint, tiny_root):
    from mmpretrain import inference_model
    image = osp.join(tiny_root, 'val', 'circle', 'circle_0000.png')
    result = inference_model(
        'edgeformer-xs_8xb128_in1k', image, pretrained=xs_checkpoint)
    assert result['pred_scores'].shape == (1000, )
    assert 0 <= result['pred_label'] < 1000
    assert isinstance(result['pred_class'], str)  # an ImageNet class name


def test_checkpoint_with_other_classes_gives_a_clear_error(
        xs_checkpoint, tiny_root):
    from mmpretrain import get_model
    with pytest.raises(ValueError, match='1000 classes .* the model 4'):
        get_model(TINY, pretrained=xs_checkpoint)


@pytest.mark.slow
def test_weights_only_loading_of_mmengine_checkpoints(trained_runner):
    """torch >= 2.6 refuses mmengine checkpoints unless their few extra
    types are allowed; importing edgeformer_mm allows exactly those."""
    import subprocess
    import sys
    checkpoint = osp.join(trained_runner.work_dir, 'epoch_1.pth')
    load = f'import torch; torch.load({checkpoint!r})'
    plain = subprocess.run([sys.executable, '-c', load],
                           capture_output=True, text=True)
    assert plain.returncode != 0 and 'HistoryBuffer' in plain.stderr
    ours = subprocess.run(
        [sys.executable, '-c', f'import edgeformer_mm; {load}'],
        capture_output=True, text=True)
    assert ours.returncode == 0, ours.stderr


def test_checkpoint_getattr_stays_restricted(tmp_path):
    """The getattr that HistoryBuffer needs reaches nothing else, even on
    an allowed class."""
    from mmengine.logging.history_buffer import HistoryBuffer

    class Exploit:

        def __reduce__(self):
            return getattr, (HistoryBuffer, 'register_statistics')

    torch.save({'x': Exploit()}, tmp_path / 'evil.pth')
    with pytest.raises(Exception, match='refusing getattr'):
        torch.load(tmp_path / 'evil.pth')
