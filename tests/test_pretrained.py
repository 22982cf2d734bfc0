"""Shipped models: listed, loadable by name, render on shifted and wider grids, and keep the
ordering the study reports (MS-PE more shift-consistent than the baseline)."""
import pytest
import torch

from posgen import checkpoint
from posgen.cli import main
from posgen.grid import Grid
from posgen.metrics.shift_consistency import shift_consistency
from posgen.pretrained import PRETRAINED, list_pretrained, pretrained_path
from posgen.sampling import load, make_sample_fn, render_seeds


def test_every_listed_model_is_shipped_and_small():
    rows = list_pretrained()
    assert [r["name"] for r in rows] == list(PRETRAINED)
    assert sum(r["bytes"] for r in rows) < 30 * 2**20


@pytest.mark.parametrize("name", list(PRETRAINED))
def test_shipped_model_loads_by_name_and_renders_shifted_and_wider(name):
    G, cfg, state = load(name)
    # a SinGAN step is one iteration on one image: 6 scales x 400 of them; the shortest GAN runs shipped
    # (DCGAN / PGGAN, 5 minutes each) saw 9.7-14 kimg
    assert cfg.name == name and (state["step"] >= 2400 if cfg.family == "singan" else state["kimg"] >= 9)
    res = G.resolution
    fast = {"sampler": "ddim", "steps": 10} if "steps" in G.capabilities else {}  # DDPMs: 10 DDIM steps
    base = render_seeds(G, [0, 1], Grid(res, res), **fast)
    if "shift" not in G.capabilities:  # a DCGAN renders its training canvas only; a baseline DDPM has no coordinates
        assert base.shape == (2, 3, res, res) and torch.isfinite(base).all()
        return
    shifted = render_seeds(G, [0, 1], Grid(res, res).shift(0, res // 4), **fast)
    wide = render_seeds(G, [0, 1], Grid(res, 2 * res), **fast)
    assert base.shape == shifted.shape == (2, 3, res, res) and wide.shape == (2, 3, res, 2 * res)
    assert all(torch.isfinite(x).all() for x in (base, shifted, wide))
    assert not torch.equal(base, shifted)


def test_a_local_path_of_the_same_name_wins(tmp_path, monkeypatch, trained_run):
    monkeypatch.chdir(tmp_path)
    assert checkpoint.resolve("digits-mspe") == pretrained_path("digits-mspe")
    (tmp_path / "digits-mspe").symlink_to(trained_run)
    assert checkpoint.resolve("digits-mspe").resolve() == (trained_run / checkpoint.CHECKPOINT_NAME).resolve()


def test_pretrained_command_lists_names(capsys):
    assert main(["pretrained"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(PRETRAINED)


def test_padding_free_mspe_is_the_most_shift_consistent():
    """Choi Fig. 2(d) / Xu Sec. 3 on a small fixed protocol: 8 seeds, whole and half-pixel shifts up to 8 px.
    Without padding the encoding is G's only positional cue, so the digit moves with the grid. With zero
    padding, MS-PE trained with the pull recipe reads the corner from the padding and keeps its digit there,
    less consistent than the baseline, whose learned constant moves with the grid by whole cells (docs/study.md
    F1: 0.225 against 0.414 on 256 latents; the reverse of Choi et al.'s order)."""
    means = {}
    for name in ("digits-mspe-nopad", "digits-mspe", "digits-baseline"):
        G, cfg, _ = load(name)
        res = shift_consistency(make_sample_fn(G), grid=Grid(G.resolution, G.resolution),
                                region=tuple(cfg.data.digits.region), max_shift=8, step=1.5, num_samples=8)
        means[name] = res["mean"]
    assert means["digits-mspe-nopad"] > max(means["digits-mspe"], means["digits-baseline"]) + 0.2, means
    assert means["digits-baseline"] > means["digits-mspe"] + 0.1, means


# shipped StyleGAN2 digits models of the presets' recipe (class-conditional, nearest-sample pull) that follow
# --class for every class; not digits-sspe (asked for "8", it draws one in 2 of 8 seeds) nor digits-nopad ("2": 3 of 8)
CONDITIONAL = ["digits-baseline", "digits-mspe", "digits-mspe-nopad"]


@pytest.mark.parametrize("name", CONDITIONAL)
def test_the_shipped_conditional_models_draw_the_digit_asked_for(name):
    """`--class K` on the conditional baseline, MS-PE and padding-free MS-PE: the digits classifier (98.9 %
    held out) reads the asked digit in most of 8 seeds for every class, and in 90 % of all 80 (10,000 free
    samples: 97.8 %, 98.9 % and 94.6 % agreement, every class 8-12 % of samples; docs/recipe.md)."""
    from posgen.metrics.coverage import coverage_of_batches

    G, _, _ = load(name)
    assert "classes" in G.capabilities
    shares = []
    for k in range(10):
        images = render_seeds(G, list(range(8)), Grid(32, 32), label=k).clamp(-1, 1)  # const noise: the default
        shares.append(coverage_of_batches([images])["fractions"][k])
    assert min(shares) >= 0.5 and sum(shares) / 10 >= 0.9, shares
