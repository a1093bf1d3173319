"""Pure tensor operations (no module state): the quantizing non-linearities and their gradients. Needs only torch."""
from .dorefa import quantize_activation, quantize_gradient, quantize_weight
from .path import describe
from .quantize import ALPHA_MAX, ALPHA_MIN, check_alpha, check_beta, floor_signed_power, scaled_floor, signed_power

__all__ = [
    'ALPHA_MAX', 'ALPHA_MIN', 'check_alpha', 'check_beta', 'describe', 'floor_signed_power', 'quantize_activation',
    'quantize_gradient', 'quantize_weight', 'scaled_floor', 'signed_power'
]
