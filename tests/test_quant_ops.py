"""The pure quantizers: scaled floor (eq. 3, straight-through) and signed power (eq. 5, gradients eq. 6)."""
import pytest
import torch

from featquant_mmdet.ops.quantize import ALPHA_MAX, ALPHA_MIN, check_alpha, scaled_floor, signed_power


# ---------------------------------------------------------------------------------------------------- scaled floor
def test_scaled_floor_hand_computed_values():
    x = torch.tensor([0.123, -0.123, 1.0, 0.005, -0.005, 0.0, 2.999])
    torch.testing.assert_close(scaled_floor(x, 100.0), torch.tensor([0.12, -0.13, 1.0, 0.0, -0.01, 0.0, 2.99]))
    torch.testing.assert_close(scaled_floor(torch.tensor([0.25, -0.25, 0.75]), 2.0), torch.tensor([0.0, -0.5, 0.5]))


def test_scaled_floor_per_channel_beta_broadcasts():
    x = torch.full((1, 2, 1, 1), 0.37)
    y = scaled_floor(x, torch.tensor([10.0, 1.0]).view(2, 1, 1))
    torch.testing.assert_close(y.flatten(), torch.tensor([0.3, 0.0]))


def test_scaled_floor_straight_through_gradient_is_the_upstream_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    g = torch.randn(3, 4)
    scaled_floor(x, 7.0).backward(g)
    assert torch.equal(x.grad, g)  # floor has derivative 0 a.e.; STE passes dL/dy unchanged


@pytest.mark.parametrize('beta', [0, -1.0, float('nan'), float('inf'), [1.0, 0.0]])
def test_scaled_floor_rejects_non_positive_beta(beta):
    with pytest.raises(ValueError, match='beta must be > 0'):
        scaled_floor(torch.ones(2), beta)


# ---------------------------------------------------------------------------------------------------- signed power
def test_signed_power_hand_computed_values():
    x = torch.tensor([4.0, -4.0, 0.0, 0.25, -0.0])
    torch.testing.assert_close(signed_power(x, -0.5), torch.tensor([2.0, -2.0, 0.0, 0.5, 0.0]))
    torch.testing.assert_close(signed_power(x, 1.0), torch.tensor([16.0, -16.0, 0.0, 0.0625, 0.0]))
    torch.testing.assert_close(signed_power(x, 0.0), x)  # alpha = 0 is the identity
    torch.testing.assert_close(signed_power(x, -1.0), torch.tensor([1.0, -1.0, 0.0, 1.0, 0.0]))  # sign(x)


def test_signed_power_gradients_are_eq6():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    x[0, 0, 0, :3] = 0.0
    x.requires_grad_()
    alpha = torch.tensor([-0.6, 0.3, 1.7], dtype=torch.float64).view(3, 1, 1).requires_grad_()
    g = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    y = signed_power(x, alpha)
    y.backward(g)
    with torch.no_grad():
        nz = x != 0
        ln_abs = torch.where(nz, x.abs().log(), torch.zeros_like(x))
        expected_alpha = (g * y * ln_abs).sum(dim=(0, 2, 3)).view(3, 1, 1)          # sum_i dL/dy_i y_i ln|x_i|
        expected_x = torch.where(nz, g * (alpha + 1) * y / torch.where(nz, x, 1.0), 0.0)  # dL/dy (a+1) y / x
    torch.testing.assert_close(alpha.grad, expected_alpha)
    torch.testing.assert_close(x.grad, expected_x)


@pytest.mark.parametrize('alpha_shape', [(1, 4, 3, 1, 1), (2, 4, 3, 1, 1)])  # per portion; per sample (HPOW)
@pytest.mark.parametrize('needs', [(True, True), (True, False), (False, True)])
def test_signed_power_portion_by_portion_gradients_are_eq6(alpha_shape, needs):
    """Lambda > 1 (x (N, 1, C, H, W), alpha (.., Lambda, C, 1, 1)) runs one portion at a time: same eq. 6."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 1, 3, 5, 5, dtype=torch.float64, generator=gen)
    x[0, 0, 0, :2] = 0.0
    x.requires_grad_(needs[0])
    alpha = torch.rand(alpha_shape, dtype=torch.float64, generator=gen) * 6 - 1
    alpha.view(-1)[:2] = torch.tensor([ALPHA_MIN, ALPHA_MAX], dtype=torch.float64)  # the ends of the range
    alpha.requires_grad_(needs[1])
    g = torch.randn(2, 4, 3, 5, 5, dtype=torch.float64, generator=gen)
    y = signed_power(x, alpha)
    y.backward(g)
    with torch.no_grad():
        nz = x != 0
        want_y = torch.sign(x) * x.abs() ** (alpha + 1)
        ln_abs = torch.where(nz, x.abs().log(), torch.zeros_like(x))
        want_alpha = (g * y * ln_abs).sum_to_size(alpha_shape)
        want_x = torch.where(nz, g * (alpha + 1) * y / torch.where(nz, x, 1.0), 0.0).sum(1, keepdim=True)
    torch.testing.assert_close(y, want_y)
    assert (x.grad is None) != needs[0] and (alpha.grad is None) != needs[1]
    if needs[0]:
        torch.testing.assert_close(x.grad, want_x)
        assert (x.grad[~nz] == 0).all()
    if needs[1]:
        torch.testing.assert_close(alpha.grad, want_alpha)


def test_signed_power_gradcheck_float64():
    torch.manual_seed(1)
    # away from 0, where psi is smooth for every alpha (for alpha < 0 it is not differentiable at 0)
    x = (torch.rand(2, 3, 4, dtype=torch.float64) + 0.2) * torch.randint(0, 2, (2, 3, 4)).mul(2).sub(1)
    x.requires_grad_()
    alpha = torch.tensor([[-0.7], [0.0], [2.5]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(signed_power, (x, alpha))


def test_signed_power_gradient_is_zero_at_zero():
    x = torch.zeros(4, requires_grad=True)
    alpha = torch.tensor(-0.5, requires_grad=True)  # the true derivative at 0 would be infinite here
    signed_power(x, alpha).sum().backward()
    assert torch.equal(x.grad, torch.zeros(4)) and alpha.grad.item() == 0.0


def test_signed_power_is_finite_on_extreme_inputs_over_the_valid_alpha_range():
    x = torch.tensor([0.0, 1e-30, -1e-30, 1e6, -1e6, 1.0, -1.0], requires_grad=True)
    for a in torch.linspace(ALPHA_MIN, ALPHA_MAX, 13).tolist():
        alpha = torch.tensor(a, requires_grad=True)
        y = signed_power(x, alpha)
        y.backward(torch.ones_like(y))
        assert torch.isfinite(y).all(), a
        assert torch.isfinite(x.grad).all() and torch.isfinite(alpha.grad).all(), a
        x.grad = None


def test_signed_power_computes_in_float32_for_half_inputs_and_under_autocast():
    x16 = torch.tensor([300.0, -2.0, 0.5], dtype=torch.float16)
    y = signed_power(x16, 1.0)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, torch.tensor([90000.0, -4.0, 0.25]))  # 90000 would overflow float16
    xb = torch.randn(8, dtype=torch.bfloat16, requires_grad=True)
    alpha = torch.tensor(0.4, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        yb = signed_power(xb, alpha)
    assert yb.dtype == torch.float32
    torch.testing.assert_close(yb, signed_power(xb.detach().float(), 0.4))
    yb.sum().backward()
    assert xb.grad.dtype == torch.bfloat16 and torch.isfinite(alpha.grad)


def test_alpha_range_is_checked_for_numbers_and_clamped_for_tensors():
    with pytest.raises(ValueError, match=r'alpha must lie in \[-1.0, 5.0\]'):
        signed_power(torch.ones(2), 5.5)
    with pytest.raises(ValueError, match='alpha_init'):
        check_alpha(-1.5, 'alpha_init')
    with pytest.raises(TypeError, match='real number'):
        check_alpha('0.5')
    x = torch.tensor([2.0, -3.0])
    alpha = torch.tensor(7.0, requires_grad=True)
    y = signed_power(x, alpha)
    torch.testing.assert_close(y, signed_power(x, 5.0))
    y.sum().backward()
    assert alpha.grad.item() == 0.0  # clamped: no gradient pushes it further out


@pytest.mark.parametrize('fused', [False, True])
def test_exponents_on_a_bound_still_get_the_eq6_gradient(fused):
    """AlphaProjectionHook puts exponents pushed out exactly onto -1 or 5: the loss must still move them back."""
    x = torch.tensor([[0.5, -2.0, 3.0]])
    alpha = torch.tensor([[ALPHA_MIN], [ALPHA_MAX], [ALPHA_MAX + 1]], requires_grad=True)
    y = signed_power(x, alpha, fused=fused)
    y.sum().backward()
    want = (y * x.abs().log()).sum(1).detach()  # eq. 6 with dL/dy = 1
    torch.testing.assert_close(alpha.grad[:2, 0], want[:2])
    assert alpha.grad[0, 0] != 0 and alpha.grad[1, 0] != 0 and alpha.grad[2, 0] == 0  # outside: clamped
