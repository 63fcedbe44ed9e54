# The short-run settings that the tiny configs share (a few CPU minutes, a
# few hundred iterations). Each tiny config also inherits its full-size
# parent, which defines param_scheduler, custom_hooks, default_hooks, ...,
# and mmengine refuses a key that two bases define: so these are variables
# of their own, which the tiny configs use as _base_.<name>.

# 30 iterations of linear warm-up, ahead of each config's cosine.
tiny_warmup = dict(
    type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=30)

# EMA momentum 0.05 (~20 iterations) instead of the official 0.0005, which
# averages over longer than a whole tiny run; why 0.05: README.md of
# configs/mmpretrain/edgeformer.
tiny_ema_hook = dict(
    type='EMAHook',
    momentum=0.05,
    update_buffers=True,
    priority='ABOVE_NORMAL')

# Settings of the default logger and checkpoint hooks: a log line every 10
# iterations, one checkpoint kept (each config saves every max_epochs, so
# the one kept is the final one).
tiny_logger_hook = dict(interval=10)
tiny_checkpoint_hook = dict(max_keep_ckpts=1)

tiny_randomness = dict(seed=0)
