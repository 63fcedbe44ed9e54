"""Shared by the tests that train through mmengine's Runner."""


def shorten_to_one_epoch(cfg, work_dir):
    """One epoch, logged and checkpointed, with a 2-iteration warm-up."""
    cfg.train_cfg.update(max_epochs=1, val_interval=1)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=2)
    ]
    cfg.default_hooks.update(
        logger=dict(type='LoggerHook', interval=1),
        checkpoint=dict(type='CheckpointHook', interval=1))
    cfg.work_dir = str(work_dir)
