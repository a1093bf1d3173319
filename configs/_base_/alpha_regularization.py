# The learned exponents (alpha) of the power-function models: their regularisation, their projection onto the valid
# range, and their statistics. Every POW / SF-POW / HPOW config, pretraining and detection, inherits this file.
#
# - Regularisation (paper Section 2: "l2 and l1 (lasso) regularized terms towards alpha"), logged as loss_alpha. The
#   paper gives the weights in its supplementary material, which is not at hand: 1e-4 for each term is this
#   project's assumption. The schedules leave alpha out of SGD's weight decay, so this is its only penalty.
# - Projection: after every optimizer step each exponent is clamped in place onto [-1, 5] (the op's valid range;
#   eq. 6 gradients are unchanged inside it). Without it an exponent pushed past -1 is dead: the op clamps it where
#   it is used and it gets no gradient any more. The hook also refuses an exponent learning-rate multiplier that is
#   not a finite number >= 0. Projection rather than a sigmoid reparametrisation: measured in docs/alpha.md.
# - Statistics every 100 iterations: train/alpha_mean/_std/_min/_max/_at_bound and <log_dir>/alpha_stats.jsonl (per
#   layer), which `tools/analysis/alpha_report.py trajectory` plots.
#
# The exponents' optimisation settings live with the optimizer of each schedule:
#   learning rate   optim_wrapper.paramwise_cfg.custom_keys['.alpha'].lr_mult  (configs/_base_/schedules/*.py,
#                   configs/pretrain/_base_/schedules/*.py; chosen by measurement, docs/alpha.md)
#   initial value   model.backbone.quant.conv_cfg.alpha_init  (PowConv / SFPowConv / HPowConv argument; default 0,
#                   the identity map; detectors load the pretrained exponents and do not use it). Measured: starting
#                   at -0.3 the exponents stay there (mean -0.30 after 300 iterations) at no accuracy gain: 0 it is.
# --cfg-options cannot address the key '.alpha' (mmengine splits keys at dots): set another lr_mult in a two-line
# config, docs/alpha.md; alpha_init can be set with --cfg-options model.backbone.quant.conv_cfg.alpha_init=-0.3
custom_hooks = [
    dict(type='AlphaRegularizationHook', l1=1e-4, l2=1e-4),
    dict(type='AlphaStatsHook', interval=100),
    dict(type='AlphaProjectionHook'),  # last: configs and command lines that index custom_hooks.0/1 keep their meaning
]
