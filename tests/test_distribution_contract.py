"""The torch.distributions contract, checked on our distributions as PyTorch checks its own.

Adapted from the generic tests that PyTorch's test/distributions/test_distributions.py
runs on every class in its ``_get_examples()`` (TestDistributions, TestDistributionShapes,
TestConstraints, TestValidation, TestJit): the same checks, applied unchanged to
VonMisesFisher, PowerSpherical and HypersphericalUniform, with torch's own
MultivariateNormal and VonMises as controls (if a control fails, the harness is wrong,
not our classes). Where PyTorch marks a class as an expected failure of a check, the
control is skipped there as PyTorch skips it. Validation is on in every test, as in
PyTorch's DistributionsTestCase.
"""

from __future__ import annotations

import math
import warnings
from collections import namedtuple

import pytest
import torch
from torch.distributions import (
    Distribution,
    Independent,
    MultivariateNormal,
    VonMises,
    constraints,
    kl_divergence,
)
from torch.distributions.constraint_registry import biject_to, transform_to
from torch.distributions.constraints import Constraint, is_dependent

from svae_bench.distributions import HypersphericalUniform, PowerSpherical, VonMisesFisher
from svae_bench.distributions.constraints import StereographicTransform, unit_sphere

Example = namedtuple("Example", ["Dist", "params"])
OURS = (VonMisesFisher, PowerSpherical, HypersphericalUniform)


def _unit(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(*shape, dtype=dtype), dim=-1)


def get_examples() -> list[Example]:
    """Fresh parameters each call (fixed seed): batch shapes (), (n,), (2, 3) and broadcast ones,
    m = 2, 3, 5, float32 and float64, with and without requires_grad."""
    torch.manual_seed(0)
    examples = []
    for Dist in (VonMisesFisher, PowerSpherical):
        examples.append(
            Example(
                Dist,
                [
                    {"loc": _unit(2, 3, 5).requires_grad_(), "concentration": torch.randn(2, 3).exp().requires_grad_()},
                    {"loc": _unit(4), "concentration": torch.tensor(10.0, requires_grad=True)},
                    {"loc": _unit(3, 2), "concentration": torch.tensor([0.5, 3.0, 50.0])},
                    {
                        "loc": _unit(1, 3, dtype=torch.float64),
                        "concentration": torch.tensor([[1.0], [30.0]], dtype=torch.float64),
                    },
                ],
            )
        )
    examples.append(
        Example(
            HypersphericalUniform,
            [{"dim": 3}, {"dim": 5, "batch_shape": (2,)}, {"dim": 2, "dtype": torch.float64, "batch_shape": (2, 3)}],
        )
    )
    # controls: torch's own classes, examples in the style of PyTorch's
    examples.append(
        Example(
            MultivariateNormal,
            [
                {
                    "loc": torch.randn(5, 2, requires_grad=True),
                    "covariance_matrix": torch.tensor([[2.0, 0.3], [0.3, 0.25]], requires_grad=True),
                },
                {"loc": torch.randn(2), "scale_tril": torch.tensor([[1.0, 0.0], [-0.5, 0.7]])},
            ],
        )
    )
    examples.append(
        Example(
            VonMises,
            [
                {"loc": torch.tensor(1.0, requires_grad=True), "concentration": torch.tensor(10.0, requires_grad=True)},
                {"loc": torch.tensor([0.0, math.pi / 2]), "concentration": torch.tensor([1.0, 10.0])},
            ],
        )
    )
    return examples


def get_bad_examples() -> list[Example]:
    bad_vmf = [
        {"loc": torch.tensor([1.0, 1.0, 0.0]), "concentration": 1.0},  # not unit
        {"loc": torch.tensor([1.0, 0.0, 0.0]), "concentration": torch.tensor([0.0])},
        {"loc": torch.tensor([1.0, 0.0, 0.0]), "concentration": torch.tensor([-1.0])},
        {"loc": torch.tensor([1.0, 0.0, 0.0]), "concentration": torch.tensor([math.nan])},
        {"loc": torch.tensor([math.nan, 0.0, 0.0]), "concentration": torch.tensor([1.0])},
    ]
    return [
        Example(VonMisesFisher, bad_vmf),
        Example(PowerSpherical, bad_vmf),
        Example(HypersphericalUniform, [{"dim": 0}, {"dim": 2.5}, {"dim": -3}]),
        Example(
            MultivariateNormal, [{"loc": torch.zeros(2), "covariance_matrix": torch.tensor([[1.0, 2.0], [2.0, 1.0]])}]
        ),
        Example(VonMises, [{"loc": torch.tensor(0.0), "concentration": torch.tensor(-1.0)}]),
    ]


def cases():
    for Dist, params in get_examples():
        for i, param in enumerate(params):
            yield Dist, i, param


def case_id(case) -> str:
    return f"{case[0].__name__}-{case[1]}"


CASES = list(cases())


@pytest.fixture(autouse=True)
def validation_on():
    """PyTorch's DistributionsTestCase sets the validation flag for every test."""
    before = Distribution._validate_args
    Distribution.set_default_validate_args(True)
    yield
    Distribution.set_default_validate_args(before)


def test_examples_cover_our_classes_and_the_controls():
    assert {e.Dist for e in get_examples()} == {*OURS, MultivariateNormal, VonMises}


# -- TestDistributions -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_repr(case):
    Dist, _, param = case
    assert repr(Dist(**param)).startswith(Dist.__name__)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_sample_detached(case):
    Dist, _, param = case
    if not any(getattr(p, "requires_grad", False) for p in param.values()):
        pytest.skip("no parameter requires grad")
    assert not Dist(**param).sample().requires_grad


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_rsample_requires_grad(case):
    Dist, _, param = case
    if not any(getattr(p, "requires_grad", False) for p in param.values()):
        pytest.skip("no parameter requires grad")
    dist = Dist(**param)
    if not dist.has_rsample:
        pytest.skip(f"{Dist.__name__} has no rsample")
    assert dist.rsample().requires_grad


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_support_attributes(case):
    Dist, _, param = case
    d = Dist(**param)
    assert d.support.event_dim == len(d.event_shape) == Dist.support.event_dim
    assert d.support.is_discrete is Dist.support.is_discrete is False


@pytest.mark.parametrize("shape", [(), (2,), (2, 1)])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_distribution_expand(case, shape):
    Dist, _, param = case
    d = Dist(**param)
    expanded_shape = torch.Size(shape) + d.batch_shape
    original_shape = d.batch_shape + d.event_shape
    expanded = d.expand(batch_shape=list(expanded_shape))
    sample = expanded.sample()
    assert expanded.__class__ is d.__class__
    assert d.sample().shape == original_shape
    torch.testing.assert_close(expanded.log_prob(sample), d.log_prob(sample).expand(expanded_shape))
    assert expanded.sample().shape == torch.Size(shape) + original_shape
    assert expanded.batch_shape == expanded_shape
    for moment in ("mean", "variance", "entropy"):
        try:
            value = getattr(d, moment)
        except NotImplementedError:
            continue
        if moment == "entropy":
            try:
                value = value()
            except NotImplementedError:
                continue
            torch.testing.assert_close(expanded.entropy(), value.expand(expanded_shape))
        else:
            torch.testing.assert_close(getattr(expanded, moment), value.expand(expanded_shape + d.event_shape))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_distribution_subclass_expand(case):
    Dist, _, param = case

    class SubClass(Dist):
        pass

    d = SubClass(**param)
    expanded = d.expand(torch.Size((2,)) + d.batch_shape)
    sample = expanded.sample()
    assert expanded.__class__ is SubClass
    assert sample.shape == (2,) + d.batch_shape + d.event_shape
    torch.testing.assert_close(expanded.log_prob(sample), d.log_prob(sample))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_independent_expand(case):
    # the first symptom: Independent(HypersphericalUniform(...)).expand failed
    Dist, _, param = case
    d = Dist(**param)
    ind = Independent(d, len(d.batch_shape))
    expanded = ind.expand((3,))
    assert expanded.batch_shape == (3,) and expanded.event_shape == d.batch_shape + d.event_shape
    sample = expanded.sample()
    assert sample.shape == (3,) + d.batch_shape + d.event_shape
    assert expanded.log_prob(sample).shape == (3,)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_mode(case):
    """As PyTorch's test_mode: the mode has the sample's shape, is NaN for a whole event or not at
    all, lies in the support where defined, and no random perturbation inside the support (made
    with transform_to(support)) has a higher log_prob."""
    Dist, _, param = case
    torch.manual_seed(1)
    dist = Dist(**param)
    mode = dist.mode
    assert mode.shape == dist.sample().shape
    isnan = torch.isnan(mode)
    event_dims = tuple(range(-len(dist.event_shape), 0))
    nan_any = isnan.any(dim=event_dims) if event_dims else isnan
    nan_all = isnan.all(dim=event_dims) if event_dims else isnan
    assert torch.equal(nan_any, nan_all)
    defined = ~nan_all
    if Dist is HypersphericalUniform:  # every point is a mode: torch returns NaN there (cf. Uniform)
        assert not defined.any()
        return
    assert dist.support.check(mode)[defined].all()
    transform = transform_to(dist.support)
    unconstrained = transform.inv(mode.detach())
    at_mode = dist.log_prob(mode)
    tol = 1e3 * torch.finfo(at_mode.dtype).eps * (1 + at_mode.abs())  # rounding of a unit loc in float32
    for scale in (1e-3, 0.1, 1.0):
        perturbed = transform(unconstrained + scale * torch.randn((20,) + unconstrained.shape, dtype=mode.dtype))
        assert (at_mode >= dist.log_prob(perturbed) - tol).all()


# -- TestDistributionShapes and TestConstraints ------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_entropy_shape(case):
    Dist, _, param = case
    dist = Dist(validate_args=False, **param)
    try:
        entropy = dist.entropy()
    except NotImplementedError:
        pytest.skip(f"{Dist.__name__} has no entropy")
    assert entropy.shape == dist.batch_shape


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_support_constraints(case):
    Dist, _, param = case
    assert isinstance(Dist.support, Constraint)
    dist = Dist(**param)
    value = dist.sample()
    ok = dist.support.check(value)
    assert dist.support.event_dim == len(dist.event_shape)
    assert ok.shape == dist.batch_shape and ok.all()


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_params_constraints(case):
    Dist, _, param = case
    dist = Dist(**param)
    for name, value in param.items():
        if name not in dist.arg_constraints:
            continue  # a keyword that is not a parameter (dim, batch_shape, dtype)
        constraint = dist.arg_constraints[name]
        value = torch.as_tensor(value)
        assert value.dim() >= constraint.event_dim
        torch.broadcast_shapes(dist.batch_shape, value.shape[: value.dim() - constraint.event_dim])
        if not is_dependent(constraint):
            assert constraint.check(value).all(), (name, value)


def test_arg_constraints_and_support_are_exact():
    # k = 0 is excluded: the m = 3 inverse CDF and the implicit gradient divide by k
    for Dist in (VonMisesFisher, PowerSpherical):
        assert Dist.arg_constraints == {"loc": unit_sphere, "concentration": constraints.positive}
        assert Dist.support is unit_sphere
    assert HypersphericalUniform.arg_constraints == {} and HypersphericalUniform.support is unit_sphere
    assert unit_sphere.event_dim == 1 and not unit_sphere.is_discrete


# -- TestValidation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_valid(case):
    Dist, _, param = case
    Dist(validate_args=True, **param)


@pytest.mark.parametrize("Dist,params", get_bad_examples(), ids=lambda v: getattr(v, "__name__", ""))
def test_invalid(Dist, params):
    for param in params:
        with pytest.raises(ValueError):
            Dist(validate_args=True, **param)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_invalid_log_probs_arg(case):
    """PyTorch's check: with validation, a value of the wrong shape or outside the support raises
    ValueError (with torch's message for the support); without it, at most a RuntimeError."""
    Dist, _, param = case
    d_nonval = Dist(validate_args=False, **param)
    d_val = Dist(validate_args=True, **param)
    dtype = d_val.sample().dtype
    for v in torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], dtype=dtype):
        try:
            d_val.log_prob(v)
        except ValueError:
            pass
        val = torch.full(d_val.batch_shape + d_val.event_shape, v.item(), dtype=dtype)
        try:
            d_val.log_prob(val)
        except ValueError as e:
            if e.args and "must be within the support" in e.args[0]:
                try:
                    d_nonval.log_prob(val)
                except RuntimeError:
                    pass
    valid_value = d_val.sample()
    d_val.log_prob(valid_value)
    with pytest.raises(ValueError, match="Expected value argument .* to be within the support .*"):
        d_val.log_prob(torch.full_like(valid_value, math.nan))
    if Dist in OURS:  # a point just off the sphere is refused too
        with pytest.raises(ValueError, match="to be within the support"):
            d_val.log_prob(1.01 * valid_value)


@pytest.mark.parametrize("Dist", [VonMisesFisher, PowerSpherical])
def test_parameter_errors_are_torchs(Dist):
    with pytest.raises(ValueError, match=r"Expected parameter loc .* to satisfy the constraint unit_sphere\(\)"):
        Dist(torch.tensor([1.0, 1.0]), torch.tensor(1.0), validate_args=True)
    with pytest.raises(ValueError, match=r"Expected parameter concentration .* to satisfy the constraint"):
        Dist(torch.tensor([1.0, 0.0]), torch.tensor(-1.0), validate_args=True)


def test_uniform_kl_with_batch_shapes():
    loc = _unit(4, 3)
    k = torch.tensor([0.5, 2.0, 10.0, 100.0])
    for Dist in (VonMisesFisher, PowerSpherical):
        q = Dist(loc, k)
        plain = kl_divergence(q, HypersphericalUniform(3))
        batched = kl_divergence(q, HypersphericalUniform(3, batch_shape=(2, 4)))
        assert batched.shape == (2, 4)
        torch.testing.assert_close(batched, plain.expand(2, 4))


def test_uniform_moments_match_samples():
    torch.manual_seed(2)
    n, dim = 40_000, 5
    u = HypersphericalUniform(dim, dtype=torch.float64, batch_shape=(2,))
    x = u.sample((n,))
    se = x.std(0) / math.sqrt(n)
    assert ((x.mean(0) - u.mean).abs() < 4 * se).all()
    sq = x * x  # E[x_i²] = variance since the mean is 0
    assert ((sq.mean(0) - u.variance).abs() < 4 * sq.std(0) / math.sqrt(n)).all()


# -- transform_to / biject_to (PyTorch's constraint-registry checks) ------------------------------


@pytest.mark.parametrize("registry", [transform_to, biject_to], ids=["transform_to", "biject_to"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_unit_sphere_transforms(registry, dtype):
    t = registry(unit_sphere)
    assert t.codomain is unit_sphere and t.domain.event_dim == 1
    torch.manual_seed(3)
    x = 3 * torch.randn(7, 4, dtype=dtype)
    y = t(x)
    assert unit_sphere.check(y).all()
    assert y.shape == t.forward_shape(x.shape) and t.inverse_shape(y.shape) == x.shape
    x2 = t.inv(y)
    torch.testing.assert_close(t(x2), y)  # a right inverse in both cases
    if t.bijective:
        torch.testing.assert_close(x2, x)


def test_stereographic_log_det_is_the_surface_volume_factor():
    # For a map f: R^(m-1) -> S^(m-1) in R^m, the surface-measure volume factor is sqrt(det(J^T J))
    torch.manual_seed(4)
    t = biject_to(unit_sphere)
    assert isinstance(t, StereographicTransform)
    for m in (2, 3, 6):
        for x in (0.3 * torch.randn(m - 1, dtype=torch.float64), 4 * torch.randn(m - 1, dtype=torch.float64)):
            jac = torch.autograd.functional.jacobian(t, x)
            expected = 0.5 * torch.logdet(jac.T @ jac)
            torch.testing.assert_close(t.log_abs_det_jacobian(x, t(x)), expected, rtol=1e-12, atol=1e-12)


def test_stereographic_inverse_is_accurate_near_the_excluded_pole():
    z = torch.tensor([[1e-6, 0.0, -math.sqrt(1 - 1e-12)], [0.6, 0.0, -0.8]], dtype=torch.float64)
    t = biject_to(unit_sphere)
    torch.testing.assert_close(t(t.inv(z)), z, rtol=1e-12, atol=1e-15)


# -- TestJit (torch.jit.trace, checked on perturbed parameters) ---------------------------------


def _perturb(value: torch.Tensor, constraint) -> torch.Tensor:
    """PyTorch's TestJit._perturb_tensor for the constraints used here."""
    if isinstance(constraint, (constraints._GreaterThan, constraints._GreaterThanEq)):
        return value + torch.rand(value.shape, dtype=value.dtype)
    if isinstance(constraint, constraints._PositiveDefinite):
        return value + torch.eye(value.shape[-1], dtype=value.dtype)
    transform = transform_to(constraint)
    return transform(transform.inv(value) + torch.randn(value.shape, dtype=value.dtype))


def jit_cases():
    for Dist, i, param in CASES:
        values = tuple(param.values())
        if all(isinstance(v, torch.Tensor) for v in values):
            yield Dist, i, param


JIT_CASES = list(jit_cases())
#: PyTorch's own expected failures in TestJit (its "traced functions produce incorrect results")
TORCH_JIT_XFAIL = {"log_prob": {MultivariateNormal}, "entropy": {MultivariateNormal}}


def _trace(fn, inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about shapes, the deprecation notice
        return torch.jit.trace(fn, inputs)  # check_trace=True: re-traces and compares


@pytest.mark.parametrize("what", ["log_prob", "entropy", "mean"])
@pytest.mark.parametrize("case", JIT_CASES, ids=case_id)
def test_jit_trace_is_right_on_other_data(case, what):
    Dist, _, param = case
    if Dist in TORCH_JIT_XFAIL.get(what, ()):
        pytest.skip(f"PyTorch's own expected failure for {Dist.__name__}.{what} under jit.trace")
    torch.manual_seed(5)
    keys = list(param)
    values = tuple(v.detach() for v in param.values())
    sample = Dist(**param).sample()

    def f(sample, *values):
        dist = Dist(**dict(zip(keys, values)))
        if what == "log_prob":
            return dist.log_prob(sample)
        return dist.entropy() if what == "entropy" else dist.mean

    try:
        traced = _trace(f, (sample,) + values)
    except NotImplementedError:
        pytest.skip(f"{Dist.__name__} has no {what}")
    with torch.no_grad():
        values = tuple(_perturb(v, Dist.arg_constraints.get(k, constraints.real)) for k, v in zip(keys, values))
    sample = Dist(**dict(zip(keys, values))).sample()
    torch.testing.assert_close(traced(sample, *values), f(sample, *values))


@pytest.mark.parametrize("case", JIT_CASES, ids=case_id)
def test_jit_trace_rsample(case):
    """Same samples from a trace as from eager code with the same random state; the vMF, whose
    rejection sampler decides on the host, refuses to be traced instead of replaying a decision."""
    Dist, _, param = case
    if not Dist.has_rsample:
        pytest.skip(f"{Dist.__name__} has no rsample")
    keys = list(param)
    values = tuple(v.detach() for v in param.values())

    def f(*values):
        return Dist(**dict(zip(keys, values))).rsample()

    if Dist is VonMisesFisher:
        with pytest.raises(RuntimeError, match="cannot be recorded by torch.jit.trace"):
            _trace(f, values)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(f, values, check_trace=False)
    with torch.random.fork_rng():
        expected = f(*values)
    torch.testing.assert_close(traced(*values), expected)
