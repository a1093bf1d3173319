# Exponent regularisation of the power-function models (paper Section 2: "l2 and l1 (lasso) regularized terms
# towards alpha"), logged as loss_alpha, and the learned exponents' statistics. The paper gives the weights in its
# supplementary material, which is not at hand: 1e-4 for each term is this project's assumption. The schedules
# leave alpha out of SGD's weight decay (paramwise_cfg.custom_keys['.alpha']), so this is its only penalty.
custom_hooks = [
    dict(type='AlphaRegularizationHook', l1=1e-4, l2=1e-4),
    dict(type='AlphaStatsHook', interval=100),
]
