"""Quantizing convolutions of Section 2: ``U_d = sum_c W_{c,d} * f(X_c)`` with an element-wise input map ``f``.

======================  ======================================================  ==========================
layer                   input map (per input channel c, output portion lambda)   paper
======================  ======================================================  ==========================
``SFConv``              tau(x, beta) = floor(beta x) / beta                      eq. 2-3, "+SF-100"
``PowConv``             psi(x, alpha_{lambda,c}) = sign(x) |x|^(alpha+1)         eq. 4-6, "+POW-Lambda"
``HPowConv``            psi(x, alpha_{n,lambda,c}), alpha = F(mu_X, sigma_X)     eq. 7, "+HPOW"
``SFPowConv``           psi(tau(x, beta), alpha_{lambda,c})                      "+SF-POW"
======================  ======================================================  ==========================

All four are ``nn.Conv2d`` subclasses through one base, :class:`QuantConv2d`: the constructor is ``nn.Conv2d``'s plus
the layer's own keyword arguments, weights/bias/state-dict keys are ``nn.Conv2d``'s, and they are registered in
``mmengine.registry.MODELS`` so ``mmcv.cnn.build_conv_layer(dict(type='PowConv', num_portions=4), 256, 384, 3)``
builds them from any scope, and :func:`featquant_mmdet.layers.convert.convert_convs` swaps them into built models.

Output portions (Lambda, ``num_portions``)
------------------------------------------
The D output channels are split into Lambda equal portions; portion lambda sees the input through its own exponents
``alpha_{lambda, :}`` (Lambda = 1: one exponent per input channel, the paper's default; Lambda = D: one per (c, d)).
Since the conv input then differs per portion, the layer stacks the Lambda mapped inputs along channels,
``(N, Lambda*C, H, W)``, and runs ONE grouped convolution with ``groups=Lambda``: group lambda reads channels
``[lambda*C, (lambda+1)*C)`` and writes output channels ``[lambda*D/Lambda, (lambda+1)*D/Lambda)`` with exactly the
rows of the ordinary ``(D, C, kh, kw)`` weight, so the weight layout is unchanged. This materialises Lambda copies
of the input (never D, unless Lambda = D is asked for) and has the FLOPs of the plain convolution. Lambda > 1
needs ``groups=1`` in the original convolution.

Memory: ``memory_efficient=True`` recomputes the mapped input in backward
----------------------------------------------------------------------
By default ``conv(f(x))`` is differentiated by autograd: the conv keeps ``f(x)`` for its weight gradient, one extra
input-sized tensor per quantized layer between forward and backward (``x`` is alive anyway and ``f(x)`` is shared
with the conv); the eager power also keeps ``log2|x|`` so that its backward needs no logarithm, and SF-POW's eager
path ``tau(x)`` (the fused paths, the CPU's C++ kernel included, keep neither: they recompute them). With
``memory_efficient=True`` (like timm's memory-efficient activations) forward computes ``f(x)`` without autograd,
runs the conv and saves only ``x`` and the small parameter tensors; backward recomputes ``f(x)`` once, takes the
conv's input and weight gradients with ``aten.convolution_backward`` and differentiates ``f`` with autograd. Same
values and gradients; it costs one more forward pass of the map in backward and removes the layer's extra activation
memory, which matters when every conv of a deep net is quantized: in a stack of six PowConv + ReLU blocks on the CPU
(the C++ kernel) the activations kept for backward drop from 1.86x to 1.00x those of plain convs (Lambda = 4: from
4.43x to 1.00x), peak memory from 1.39x to 1.07x (Lambda = 4: 2.95x to 1.65x) (``benchmarks/bench_quant_conv_gpu.py``,
section 3; docs/speed.md).

Speed: ``fused`` (None: auto) picks the maps' implementation (:mod:`featquant_mmdet.ops.path`; ``ops.describe()``
says which runs where and why): compiled kernels (one pass forward, one backward) by default on CUDA, a C++ kernel on
the CPU (:mod:`featquant_mmdet.ops.native`), the eager reference where neither can be built or run.

Precision: the map is computed in float32 (float16/bfloat16 inputs under ``torch.autocast`` included); the conv then
runs in whatever precision autocast picks, exactly as a plain conv would.
"""
import functools
import inspect
import math
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..ops.path import check_fused_setting
from ..ops.quantize import (ALPHA_MAX, ALPHA_MIN, check_alpha, check_beta, floor_signed_power,
                            portioned_power_kernel, scaled_floor, signed_power)
from .registry import register_in_mmengine

_CONV2D_KWARGS = tuple(p for p in inspect.signature(nn.Conv2d.__init__).parameters if p != 'self')


# --------------------------------------------------------------------------------------------------------------------
# The input maps: pure functions of the input and parameter tensors (so backward can recompute them).
# --------------------------------------------------------------------------------------------------------------------
# ``fused``: None (auto), True or False, see featquant_mmdet.ops.path.
def floor_map(x: Tensor, beta: Tensor, fused: Optional[bool] = None) -> Tensor:
    """tau(x, beta) per channel; ``beta`` has shape ``()`` or ``(C,)``."""
    return scaled_floor(x, _per_channel(beta), fused)


def portioned_power_map(x: Tensor, alpha: Tensor, fused: Optional[bool] = None) -> Tensor:
    """psi per output portion: ``x`` (N, C, H, W), ``alpha`` (Lambda, C) or per sample (N, Lambda, C).

    Returns (N, C, H, W) for Lambda = 1, else the Lambda mapped copies stacked along channels, (N, Lambda*C, H, W).
    """
    y = portioned_power_kernel(x, None, alpha, fused)
    if y is not None:
        return y
    x, alpha = _portioned(x, alpha)
    return _stacked(signed_power(x, alpha, fused))


def floor_power_map(x: Tensor, beta: Tensor, alpha: Tensor, fused: Optional[bool] = None) -> Tensor:
    """psi(tau(x, beta), alpha) per output portion (see :func:`portioned_power_map`)."""
    y = portioned_power_kernel(x, beta, alpha, fused)
    if y is not None:
        return y
    x, alpha = _portioned(x, alpha)
    return _stacked(floor_signed_power(x, _per_channel(beta), alpha, fused))


def _per_channel(beta: Tensor) -> Tensor:
    return beta.view(-1, 1, 1) if beta.dim() else beta


def _portioned(x: Tensor, alpha: Tensor) -> Tuple[Tensor, Tensor]:
    """Lambda = 1: x and alpha as (1|N, C, 1, 1); else x (N, 1, C, H, W) and alpha (1|N, Lambda, C, 1, 1)."""
    num_portions = alpha.shape[-2]
    alpha = alpha[..., None, None]  # (..., Lambda, C, 1, 1)
    if num_portions == 1:
        return x, alpha.squeeze(-4)
    return x.unsqueeze(1), alpha.unsqueeze(0) if alpha.dim() == 4 else alpha


def _stacked(y: Tensor) -> Tensor:
    return y.flatten(1, 2) if y.dim() == 5 else y


# --------------------------------------------------------------------------------------------------------------------
# conv(f(x)) without keeping f(x) between forward and backward.
# --------------------------------------------------------------------------------------------------------------------
class _MappedInputConv(torch.autograd.Function):

    @staticmethod
    def forward(ctx, input_map: Callable, conv_args: tuple, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                *map_params: Tensor) -> Tensor:
        stride, padding, dilation, groups = conv_args
        with torch.no_grad():
            mapped = _match_conv_dtype(input_map(x, *map_params), weight)
        out = F.conv2d(mapped, weight, bias, stride, padding, dilation, groups)
        ctx.input_map, ctx.conv_args, ctx.has_bias = input_map, conv_args, bias is not None
        ctx.save_for_backward(x, weight, *map_params)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight, *map_params = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv_args
        needs = ctx.needs_input_grad  # (input_map, conv_args, x, weight, bias, *map_params)
        leaves = [x.detach().requires_grad_(needs[2])]
        leaves += [p.detach().requires_grad_(need) for p, need in zip(map_params, needs[5:])]
        need_mapped_grad = any(t.requires_grad for t in leaves)
        with torch.enable_grad():
            mapped = ctx.input_map(*leaves)
        conv_dtype = grad_out.dtype  # the conv's compute dtype (autocast may have picked float16/bfloat16)
        grad_mapped, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad_out, mapped.detach().to(conv_dtype), weight.to(conv_dtype),
            [weight.shape[0]] if ctx.has_bias else None, list(stride), list(padding), list(dilation), False, [0, 0],
            groups, [need_mapped_grad, bool(needs[3]), bool(needs[4])])
        leaf_grads = [None] * len(leaves)
        if need_mapped_grad:
            wanted = [i for i, t in enumerate(leaves) if t.requires_grad]
            grads = torch.autograd.grad(mapped, [leaves[i] for i in wanted], grad_mapped.to(mapped.dtype))
            for i, g in zip(wanted, grads):
                leaf_grads[i] = g
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        if grad_bias is not None:
            grad_bias = grad_bias.to(weight.dtype)
        return (None, None, leaf_grads[0], grad_weight, grad_bias, *leaf_grads[1:])


def _match_conv_dtype(mapped: Tensor, weight: Tensor) -> Tensor:
    # The maps return float32; under autocast the conv casts for itself, otherwise the weight's dtype rules.
    if torch.is_autocast_enabled(mapped.device.type):
        return mapped
    return mapped.to(weight.dtype)


# --------------------------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------------------------
class QuantConv2d(nn.Conv2d):
    """Base class: ``nn.Conv2d`` applied to ``input_map(x, *self.map_params(x))`` (see the module docstring).

    Subclasses set ``input_map`` (a pure function, a staticmethod) and implement ``map_params(x)`` returning the
    tensors it needs; ``num_portions`` (Lambda) > 1 turns the conv into a ``groups=Lambda`` conv over the stacked
    maps. The constructor takes ``nn.Conv2d``'s arguments and ``memory_efficient`` (recompute the map in backward
    instead of keeping it, default False) and ``fused`` (None: auto, True/False: force the compiled or the eager
    maps, see :mod:`featquant_mmdet.ops.path`); anything else raises a ``TypeError`` naming it.
    """

    input_map: Callable = None
    num_portions: int = 1

    def __init__(self, *args, memory_efficient: bool = False, fused: Optional[bool] = None, **kwargs):
        unknown = sorted(set(kwargs) - set(_CONV2D_KWARGS))
        if unknown:
            raise TypeError(f'{type(self).__name__} got unexpected keyword argument(s) {unknown}; accepted are '
                            f'nn.Conv2d\'s {list(_CONV2D_KWARGS)} and its own {self._own_kwargs()}')
        if not isinstance(memory_efficient, bool):
            raise TypeError(f'{type(self).__name__}: memory_efficient must be True or False, got {memory_efficient!r}')
        super().__init__(*args, **kwargs)
        self.memory_efficient = memory_efficient
        self.fused = check_fused_setting(fused)

    @classmethod
    def _own_kwargs(cls):
        names = []
        for klass in (cls, QuantConv2d):
            names += [name for name, p in inspect.signature(klass.__init__).parameters.items()
                      if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in names]
        return names

    def _set_num_portions(self, num_portions) -> None:
        if isinstance(num_portions, bool) or not isinstance(num_portions, int) or num_portions < 1:
            raise ValueError(f'{type(self).__name__}: num_portions (Lambda) must be a positive int, got '
                             f'{num_portions!r}')
        if self.out_channels % num_portions:
            divisors = [k for k in range(1, self.out_channels + 1) if self.out_channels % k == 0]
            raise ValueError(f'{type(self).__name__}: num_portions (Lambda) must divide out_channels='
                             f'{self.out_channels}; got {num_portions}, accepted: {divisors}')
        if num_portions > 1 and self.groups != 1:
            raise ValueError(f'{type(self).__name__}: num_portions (Lambda) > 1 needs groups=1, got '
                             f'groups={self.groups}')
        self.num_portions = num_portions

    def map_params(self, x: Tensor) -> Tuple[Tensor, ...]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (super().extra_repr() + (', memory_efficient=True' if self.memory_efficient else '')
                + ('' if self.fused is None else f', fused={self.fused}'))

    def _input_map(self) -> Callable:
        return functools.partial(type(self).input_map, fused=self.fused)

    def mapped_input(self, x: Tensor) -> Tensor:
        """f(x) as the conv sees it: (N, C, H, W), or (N, Lambda*C, H, W) for Lambda > 1 (float32)."""
        return self._input_map()(x, *self.map_params(x))

    def forward(self, x: Tensor) -> Tensor:
        params = self.map_params(x)  # before padding: HPOW's statistics are of the real input
        padding = self.padding
        if self.padding_mode != 'zeros' or isinstance(padding, str):
            # Every map is element-wise with f(0) = 0, so padding x first equals padding f(x).
            mode = 'constant' if self.padding_mode == 'zeros' else self.padding_mode
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=mode)
            padding = (0, 0)
        conv_args = (self.stride, padding, self.dilation, self.groups * self.num_portions)
        if self.memory_efficient and torch.is_grad_enabled():
            return _MappedInputConv.apply(self._input_map(), conv_args, x, self.weight, self.bias, *params)
        mapped = _match_conv_dtype(self._input_map()(x, *params), self.weight)
        return F.conv2d(mapped, self.weight, self.bias, *conv_args)


# The registered layers list nn.Conv2d among their direct bases although QuantConv2d already derives from it:
# mmengine's init configs (e.g. mmdet ResNet's dict(type='Kaiming', layer='Conv2d')) match a module's class name and
# its *direct* base names only, and a quantized conv put in by conv_cfg must get the init of the conv it replaces.
class SFConv(QuantConv2d, nn.Conv2d):
    """Convolution of the scaled-floor input (eq. 2-3): ``U = W * tau(X, beta)``, ``tau(x, b) = floor(b x) / b``.

    Args (besides ``nn.Conv2d``'s):
        beta: the scale, > 0. One number for all channels (the paper's choice, ``beta = 100``) or a sequence of
            ``in_channels`` numbers, one per input channel. A fixed hyper-parameter (a non-persistent buffer).

    The floor's gradient is the straight-through estimator: dL/dx = dL/dtau.
    """

    input_map = staticmethod(floor_map)

    def __init__(self, *args, beta: Union[float, Sequence[float]] = 100.0, **kwargs):
        super().__init__(*args, **kwargs)
        beta_t = check_beta(beta)
        if beta_t.dim() > 1 or (beta_t.dim() == 1 and beta_t.numel() != self.in_channels):
            raise ValueError(f'SFConv: beta must be one number or {self.in_channels} (in_channels) numbers, got '
                             f'shape {tuple(beta_t.shape)}')
        self.register_buffer('beta', beta_t.to(self.weight.device), persistent=False)

    def map_params(self, x: Tensor) -> Tuple[Tensor, ...]:
        return (self.beta,)

    def extra_repr(self) -> str:
        beta = self.beta.item() if self.beta.dim() == 0 else f'per-channel({self.beta.numel()})'
        return f'{super().extra_repr()}, beta={beta}'


class _PowerExponentsMixin:
    """Learnable exponents ``alpha`` of shape (Lambda, in_channels), shared by PowConv and SFPowConv."""

    def _init_alpha(self, alpha_init: float, num_portions: int) -> None:
        self._set_num_portions(num_portions)
        alpha_init = check_alpha(alpha_init, f'{type(self).__name__}: alpha_init')
        self.alpha = nn.Parameter(torch.full((num_portions, self.in_channels), alpha_init,
                                             device=self.weight.device, dtype=self.weight.dtype))

    def exponents(self) -> Tensor:
        """The learnable exponents (Lambda, C), as stored (the forward clamps them into [-1, 5])."""
        return self.alpha


class PowConv(_PowerExponentsMixin, QuantConv2d, nn.Conv2d):
    """Convolution of the signed-power input (eq. 4-6): ``U_d = sum_c W_{c,d} * psi(X_c, alpha_{lambda(d), c})``.

    Args (besides ``nn.Conv2d``'s):
        alpha_init: initial exponent, in ``[-1, 5]`` (0, the default, is the identity map).
        num_portions: Lambda, the number of output-channel portions with their own exponents; must divide
            ``out_channels``. 1 (default, the paper's "POW-1") shares one exponent per input channel.

    The exponents are parameters of shape (Lambda, in_channels). They are not hard-limited during training (the
    paper regularises them with L1/L2 instead, see ``AlphaRegularizationHook``) but the forward clamps them into
    the numerically safe range [-1, 5]; a stored value outside gets no gradient from the loss, only from the
    regulariser, which pulls it back.
    """

    input_map = staticmethod(portioned_power_map)

    def __init__(self, *args, alpha_init: float = 0.0, num_portions: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_alpha(alpha_init, num_portions)

    def map_params(self, x: Tensor) -> Tuple[Tensor, ...]:
        return (self.alpha,)

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, num_portions={self.num_portions}'


class SFPowConv(_PowerExponentsMixin, QuantConv2d, nn.Conv2d):
    """Floor, then power: ``U_d = sum_c W_{c,d} * psi(tau(X_c, beta), alpha_{lambda(d), c})`` ("+SF-POW").

    Order: floor first. The floor then acts on the raw features exactly as in ``SFConv``, so ``beta`` keeps its
    meaning (a grid step of 1/beta in feature units, noise below it removed) whatever the learned exponents, and
    the power only re-spaces the quantization levels. The other order would make the grid depend on alpha (with
    alpha < 0 the power stretches small values, so a fixed beta would quantize them ever more finely). Gradients:
    straight-through for the floor, eq. 6 for the power evaluated at the floored value, hence 0 for inputs that
    floor to 0 (0 <= x < 1/beta), as eq. 6 prescribes at 0.

    Args: ``beta`` as in :class:`SFConv` (default 100), ``alpha_init`` and ``num_portions`` as in :class:`PowConv`.
    """

    input_map = staticmethod(floor_power_map)

    def __init__(self, *args, beta: Union[float, Sequence[float]] = 100.0, alpha_init: float = 0.0,
                 num_portions: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        beta_t = check_beta(beta, 'SFPowConv: beta')
        if beta_t.dim() > 1 or (beta_t.dim() == 1 and beta_t.numel() != self.in_channels):
            raise ValueError(f'SFPowConv: beta must be one number or {self.in_channels} (in_channels) numbers, '
                             f'got shape {tuple(beta_t.shape)}')
        self.register_buffer('beta', beta_t.to(self.weight.device), persistent=False)
        self._init_alpha(alpha_init, num_portions)

    def map_params(self, x: Tensor) -> Tuple[Tensor, ...]:
        return (self.beta, self.alpha)

    def extra_repr(self) -> str:
        beta = self.beta.item() if self.beta.dim() == 0 else f'per-channel({self.beta.numel()})'
        return f'{super().extra_repr()}, beta={beta}, num_portions={self.num_portions}'


class _LastExponents:
    """Holds the last forward's exponents; copies and pickles empty (a graph-attached tensor cannot be deep-copied,
    and mmengine deep-copies models, e.g. for EMA)."""

    def __init__(self):
        self.exponents: Optional[Tensor] = None

    def __deepcopy__(self, memo):
        return _LastExponents()

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.exponents = None


class HPowConv(QuantConv2d, nn.Conv2d):
    """Power convolution whose exponents a hypernetwork computes per sample (eq. 7): ``alpha = F(mu_X, sigma_X)``.

    Hypernetwork ``F`` (per sample n; C = in_channels, H = hidden_channels, Lambda = num_portions)::

        s     = [mu_X ; sigma_X]                       (2C,)  per-channel mean and std over the spatial dims
        s'    = sign(s) * log(1 + |s|)                 hyper_input='log' (default); 'raw': s' = s
        z     = fc2(ReLU(fc1(s')))                     fc1: 2C -> H,  fc2: H -> Lambda*C
        alpha = -1 + 6 * sigmoid(z)                    (Lambda, C), always inside the valid range (-1, 5)

    Why the log: unnormalised features make ``s`` large (ZF's conv3-5 inputs: |s| ~ 130, entries up to 33), so a
    clipped SGD step on ``fc1`` moves ``z`` by tens and the exponents jump to the bounds within ~20 iterations:
    loss NaN (measured: docs/robustness_study.md, "HPOW: the divergence, its cause and the fix"). The log keeps
    the entries O(1) (|s'| ~ 38, entries <= 3.5 there) and the scale information (monotone, sample-wise, no batch
    or running statistics).

    Initialisation: ``fc1`` keeps PyTorch's default init; ``fc2``'s weight is 0 and its bias is
    ``logit((alpha_init + 1) / 6)``, so every sample starts at exactly ``alpha = alpha_init`` (default 0: the
    identity map, the conv behaves like the plain conv it replaced) and training moves away from it; the sigmoid
    reparametrisation keeps alpha in range without a clamp that would cut the gradient. The statistics are taken
    in float32 over the (unpadded) input, and the gradient flows through them to the input as well.

    Args (besides ``nn.Conv2d``'s):
        hidden_channels: H; default ``max(8, in_channels // 4)``.
        num_portions: Lambda output-channel portions, each with its own exponents (divides ``out_channels``).
        alpha_init: the exponent at initialisation, strictly inside (-1, 5).
        eps: added to the variance before the square root.
        hyper_input: ``'log'`` (default) or ``'raw'`` (the statistics as they are; diverges on ZF, kept to
            reproduce that measurement and for checkpoints trained before this option existed).
    """

    input_map = staticmethod(portioned_power_map)
    HYPER_INPUTS = ('log', 'raw')

    def __init__(self, *args, hidden_channels: Optional[int] = None, num_portions: int = 1,
                 alpha_init: float = 0.0, eps: float = 1e-5, hyper_input: str = 'log', **kwargs):
        super().__init__(*args, **kwargs)
        self._set_num_portions(num_portions)
        alpha_init = check_alpha(alpha_init, 'HPowConv: alpha_init')
        if alpha_init in (ALPHA_MIN, ALPHA_MAX):
            raise ValueError(f'HPowConv: alpha_init must lie strictly inside ({ALPHA_MIN}, {ALPHA_MAX}) (the '
                             f'sigmoid reaches the bounds only at infinity), got {alpha_init}')
        if hidden_channels is None:
            hidden_channels = max(8, self.in_channels // 4)
        if isinstance(hidden_channels, bool) or not isinstance(hidden_channels, int) or hidden_channels < 1:
            raise ValueError(f'HPowConv: hidden_channels must be a positive int, got {hidden_channels!r}')
        if not eps > 0:
            raise ValueError(f'HPowConv: eps must be > 0, got {eps!r}')
        self.eps = float(eps)
        if hyper_input not in self.HYPER_INPUTS:
            raise ValueError(f'HPowConv: hyper_input must be one of {self.HYPER_INPUTS}, got {hyper_input!r}')
        self.hyper_input = hyper_input
        factory = dict(device=self.weight.device, dtype=self.weight.dtype)
        self.hyper_fc1 = nn.Linear(2 * self.in_channels, hidden_channels, **factory)
        self.hyper_fc2 = nn.Linear(hidden_channels, num_portions * self.in_channels, **factory)
        nn.init.zeros_(self.hyper_fc2.weight)
        fraction = (alpha_init - ALPHA_MIN) / (ALPHA_MAX - ALPHA_MIN)
        nn.init.constant_(self.hyper_fc2.bias, math.log(fraction / (1 - fraction)))
        self._last = _LastExponents()

    def hyper_statistics(self, x: Tensor) -> Tensor:
        """The hypernetwork's input s' (N, 2C), in float32 (float64 for float64 x)."""
        x32 = x if x.dtype in (torch.float32, torch.float64) else x.float()
        var, mean = torch.var_mean(x32, dim=(2, 3), correction=0)
        stats = torch.cat([mean, (var + self.eps).sqrt()], dim=1)
        return stats.sign() * stats.abs().log1p() if self.hyper_input == 'log' else stats

    def compute_exponents(self, x: Tensor) -> Tensor:
        """alpha = F(mu_X, sigma_X) for every sample: (N, Lambda, C)."""
        stats = self.hyper_statistics(x)
        z = self.hyper_fc2(F.relu(self.hyper_fc1(stats.to(self.hyper_fc1.weight.dtype))))
        alpha = ALPHA_MIN + (ALPHA_MAX - ALPHA_MIN) * torch.sigmoid(z.to(stats.dtype))
        return alpha.view(x.shape[0], self.num_portions, self.in_channels)

    def map_params(self, x: Tensor) -> Tuple[Tensor, ...]:
        alpha = self.compute_exponents(x)
        self._last.exponents = alpha
        return (alpha,)

    def exponents(self) -> Optional[Tensor]:
        """The per-sample exponents (N, Lambda, C) of the last forward (None before the first forward).

        Still attached to the autograd graph of that forward, so a penalty on them trains the hypernetwork.
        """
        return self._last.exponents

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, num_portions={self.num_portions}, '
                f'hidden_channels={self.hyper_fc1.out_features}, hyper_input={self.hyper_input!r}')


register_in_mmengine(SFConv, PowConv, SFPowConv, HPowConv)
