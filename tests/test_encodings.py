import math

import pytest
import torch

from posgen.encodings import CartesianGrid, LearnedConstant, SinusoidalEncoding
from posgen.grid import Grid, PointGrid


def _coords(x, y):
    return torch.tensor([[[float(x)]], [[float(y)]]])  # [2, 1, 1]


def test_choi_eq1_eq2_golden_values():
    # C = 8: d = 2 frequencies per axis, omega_k = 10000^(-k / (2d)) = [1, 10000^-0.25 = 0.1]
    pe = SinusoidalEncoding(8)(_coords(x=1, y=2)).flatten()
    want = [math.sin(2), math.cos(2), math.sin(0.2), math.cos(0.2),   # y (row) first, interleaved
            math.sin(1), math.cos(1), math.sin(0.1), math.cos(0.1)]
    assert torch.allclose(pe, torch.tensor(want), atol=1e-6)


def test_xu_eq8_golden_values():
    # C = 8: D = 4 per axis, omega_k = 10000^(-2k / D) = [1, 0.01]
    pe = SinusoidalEncoding(8, frequencies="xu")(_coords(x=3, y=5)).flatten()
    want = [math.sin(5), math.cos(5), math.sin(0.05), math.cos(0.05),
            math.sin(3), math.cos(3), math.sin(0.03), math.cos(0.03)]
    assert torch.allclose(pe, torch.tensor(want), atol=1e-6)


def test_endpoint_blocked_cos_sin_xy_normalised_golden_values():
    # fairseq-style: omega_k = 10000^(-k / (n - 1)); n = 3 -> [1, 0.01, 0.0001]
    enc = SinusoidalEncoding(12, frequencies="endpoint", layout="blocked", order="cos-sin", axes="xy",
                             coordinate_scale=0.5)
    pe = enc(_coords(x=4, y=8)).flatten()
    w = [1.0, 0.01, 0.0001]
    x, y = 2.0, 4.0  # scaled by 0.5
    want = [math.cos(x * v) for v in w] + [math.sin(x * v) for v in w] + \
           [math.cos(y * v) for v in w] + [math.sin(y * v) for v in w]
    assert torch.allclose(pe, torch.tensor(want), atol=1e-6)


def test_sinusoid_offset_is_a_rotation_xu_eq9():
    enc = SinusoidalEncoding(16)
    a, b = enc(_coords(0, 3.0)).flatten(), enc(_coords(0, 5.5)).flatten()
    phi = 2.5
    for k, w in enumerate(enc.omega.tolist()):
        s, c = a[2 * k], a[2 * k + 1]
        rs = s * math.cos(w * phi) + c * math.sin(w * phi)
        rc = -s * math.sin(w * phi) + c * math.cos(w * phi)
        assert torch.allclose(torch.stack([rs, rc]), b[2 * k: 2 * k + 2], atol=1e-5)


def test_sinusoid_is_stateless_and_follows_the_module_dtype():
    enc = SinusoidalEncoding(8)
    assert enc.state_dict() == {} and list(enc.parameters()) == []
    enc = enc.double()
    assert enc(_coords(1, 1).double()).dtype == torch.float64


def test_sinusoid_shapes_batched_and_point_sets():
    enc = SinusoidalEncoding(8)
    assert enc(torch.zeros(2, 5, 7)).shape == (1, 8, 5, 7)
    assert enc(torch.zeros(3, 2, 5, 7)).shape == (3, 8, 5, 7)
    assert enc(torch.zeros(2, 11)).shape == (1, 8, 11)
    with pytest.raises(ValueError, match="divisible by 4"):
        SinusoidalEncoding(6)
    with pytest.raises(ValueError, match="coords"):
        enc(torch.zeros(3, 5, 7))


def test_cartesian_grid_eq6_anchors():
    enc = CartesianGrid((4, 8))
    assert torch.allclose(enc(_coords(x=0, y=0)).flatten(), torch.tensor([-1.0, -1.0]))
    assert torch.allclose(enc(_coords(x=4, y=2)).flatten(), torch.tensor([0.0, 0.0]))  # centre
    assert torch.allclose(enc(_coords(x=6, y=1)).flatten(), torch.tensor([-0.5, 0.5]))  # (y, x) order


def test_learned_constant_exact_on_lattice_bilinear_between_and_periodic():
    const = LearnedConstant(3, (4, 4))
    wgt = const.weight.detach()
    assert torch.allclose(const(_coords(x=2, y=1)).flatten(), wgt[:, 1, 2])
    assert torch.allclose(const(_coords(x=2.5, y=1)).flatten(), (wgt[:, 1, 2] + wgt[:, 1, 3]) / 2, atol=1e-6)
    q = const(_coords(x=0.25, y=0.5)).flatten()
    want = 0.5 * (0.75 * wgt[:, 0, 0] + 0.25 * wgt[:, 0, 1]) + 0.5 * (0.75 * wgt[:, 1, 0] + 0.25 * wgt[:, 1, 1])
    assert torch.allclose(q, want, atol=1e-6)
    # periodic: x = 3.5 blends index 3 and index 0; x = -1 is index 3
    assert torch.allclose(const(_coords(x=3.5, y=0)).flatten(), (wgt[:, 0, 3] + wgt[:, 0, 0]) / 2, atol=1e-6)
    assert torch.allclose(const(_coords(x=-1, y=0)).flatten(), wgt[:, 0, 3])


def test_learned_constant_gets_gradients():
    const = LearnedConstant(2, (4, 4))
    const(torch.rand(2, 3, 3) * 4).sum().backward()
    assert const.weight.grad is not None and const.weight.grad.abs().sum() > 0


def test_learned_constant_reproduces_its_parameter_on_the_training_lattice():
    for boundary in ("wrap", "clamp"):
        const = LearnedConstant(3, (5, 7), boundary=boundary)
        out = const(Grid(5, 7).coords())
        assert out.shape == (1, 3, 5, 7) and torch.equal(out[0], const.weight.detach())
        pts = const(PointGrid.from_grid(Grid(5, 7)).coords())  # [1, C, P] on a point set
        assert pts.shape == (1, 3, 35) and torch.equal(pts, out.flatten(2))


def test_learned_constant_half_pixels_give_the_mean_of_the_neighbours():
    const = LearnedConstant(4, (5, 7), boundary="clamp")
    wgt = const.weight.detach()
    out = const(Grid(5, 7).shift(-0.5, -0.5).coords())[0]  # pixel (i, j) at (x=j+0.5, y=i+0.5)
    mean4 = (wgt[:, :-1, :-1] + wgt[:, 1:, :-1] + wgt[:, :-1, 1:] + wgt[:, 1:, 1:]) / 4
    assert torch.allclose(out[:, :-1, :-1], mean4, atol=1e-6)
    out = const(Grid(5, 7).shift(0, -0.5).coords())[0]
    assert torch.allclose(out[:, :, :-1], (wgt[:, :, :-1] + wgt[:, :, 1:]) / 2, atol=1e-6)


def test_learned_constant_clamp_replicates_the_edge_wrap_is_periodic():
    wrap, clamp = LearnedConstant(2, (3, 4)), LearnedConstant(2, (3, 4), boundary="clamp")
    clamp.load_state_dict(wrap.state_dict())
    wgt = wrap.weight.detach()
    pts = torch.tensor([[-1.0, 3.5, 9.25, 1.0], [0.0, 1.0, 2.0, -7.5]])  # [2, P] (x, y)
    w, c = wrap(pts)[0], clamp(pts)[0]  # [C, P]
    assert torch.allclose(w[:, 0], wgt[:, 0, 3]) and torch.allclose(c[:, 0], wgt[:, 0, 0])
    assert torch.allclose(w[:, 1], (wgt[:, 1, 3] + wgt[:, 1, 0]) / 2) and torch.allclose(c[:, 1], wgt[:, 1, 3])
    assert torch.allclose(w[:, 2], 0.75 * wgt[:, 2, 1] + 0.25 * wgt[:, 2, 2], atol=1e-6)  # 9.25 = 1.25 mod 4
    assert torch.allclose(c[:, 2], wgt[:, 2, 3])
    assert torch.allclose(w[:, 3], 0.5 * wgt[:, 1, 1] + 0.5 * wgt[:, 2, 1], atol=1e-6)  # -7.5 = 1.5 mod 3
    assert torch.allclose(c[:, 3], wgt[:, 0, 1])
    with pytest.raises(ValueError, match="boundary"):
        LearnedConstant(2, (3, 4), boundary="mirror")
