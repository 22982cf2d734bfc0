"""The family contract suite: every entry of `posgen.families.FAMILIES` runs these tests on a tiny
run of its own (conftest.TINY_PRESET). A new family gets them by being in the table."""
from __future__ import annotations

import pytest
import torch

from conftest import TINY_PRESET, tiny_run
from posgen import checkpoint
from posgen.options import grid_for
from posgen.errors import CapabilityError
from posgen.families import FAMILIES, build_generator
from posgen.grid import Canvas, PointGrid
from posgen.models.base import CAPABILITIES, Generator, RenderOptions
from posgen.sampling import render_seeds
from posgen.training.loop import train

FAMILY_NAMES = list(FAMILIES)

# how to ask for each capability: a canvas, render options, or a point set
CANVAS_ASKS = {"shift": Canvas(shift=(2, 3)), "roll": Canvas(shift=(0, 5), roll=True), "zoom": Canvas(zoom=1.5),
               "expand": Canvas(size=(16, 40)), "rotate": Canvas(rotate=30)}
OPTION_ASKS = {"truncation": dict(truncation_psi=0.5), "noise": dict(noise_mode="random"),
               "chunks": dict(chunk_points=37), "steps": dict(steps=2), "classes": dict(label=1)}


def test_every_family_has_a_tiny_run_for_the_suite():
    missing = [f for f in FAMILIES if f not in TINY_PRESET]
    assert not missing, f"add these families to conftest.TINY_PRESET: {missing}"


def test_every_capability_is_known_and_every_family_declares_its_own():
    for name, fam in FAMILIES.items():
        assert fam.generator.family == name
        assert fam.generator.capabilities <= set(CAPABILITIES), name
        assert issubclass(fam.generator, Generator)


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def family_run(request, tmp_path_factory):
    """A 2-step run of the family through the generic driver, and its EMA generator loaded back."""
    name = request.param
    out = tmp_path_factory.mktemp(name) / "run"
    cfg = tiny_run(TINY_PRESET[name], "train.kimg=0.008")
    train(cfg, out, seed=2, progress=False)
    G, loaded_cfg, state = checkpoint.load_generator(out)
    return name, cfg, G, out


def test_the_checkpoint_rebuilds_the_generator_from_the_whole_run_config(family_run):
    name, cfg, G, out = family_run
    tensors, loaded, state = checkpoint.load(out)
    assert loaded == cfg and state["step"] == 2 and type(G) is FAMILIES[name].generator
    fresh = build_generator(loaded)  # same architecture: every stored tensor has its place
    fresh.load_state_dict({k: v.float() for k, v in checkpoint.generator_weights(tensors).items()})
    assert torch.equal(render_seeds(fresh.eval(), [0, 1], batch_size=2), render_seeds(G, [0, 1], batch_size=2))
    lines = (out / "stats.jsonl").read_text().splitlines()
    assert lines, "the driver writes stats.jsonl"


def test_renders_are_a_function_of_the_seed_not_of_the_batch(family_run):
    _, _, G, _ = family_run
    a = render_seeds(G, [5, 7, 9], batch_size=3)
    b = render_seeds(G, [7], batch_size=1)
    assert torch.allclose(a[1:2], b, atol=1e-5)
    assert torch.equal(render_seeds(G, [5, 7, 9], batch_size=3), a)
    assert not torch.allclose(a[0], a[2])
    assert a.shape[-2:] == G.default_grid().size


def test_non_square_canvases_render(family_run):
    name, _, G, _ = family_run
    if "expand" not in G.capabilities:
        pytest.skip(f"{name} renders its training canvas only")
    for size in ((16, 40), (24, 16)):
        img = render_seeds(G, [0], grid_for(G, Canvas(size=size), name))
        assert img.shape[-2:] == size and torch.isfinite(img).all()


@pytest.mark.parametrize("capability", list(CAPABILITIES))
def test_each_capability_works_when_declared_and_is_refused_in_one_line_when_not(family_run, capability):
    name, _, G, _ = family_run
    declared = capability in G.capabilities
    if capability in CANVAS_ASKS:
        canvas = CANVAS_ASKS[capability]
        if not declared:
            with pytest.raises(CapabilityError, match=f"^{canvas.requested()[capability]} needs .*; m is a {name} model$"):
                grid_for(G, canvas, "m")
            return
        grid = grid_for(G, canvas, "m")
        moved, still = render_seeds(G, [0], grid), render_seeds(G, [0])
        assert moved.shape[-2:] == grid.size and torch.isfinite(moved).all()
        assert moved.shape != still.shape or not torch.allclose(moved, still)  # the canvas changed something
        return
    if capability in OPTION_ASKS:
        options = OPTION_ASKS[capability]
        if not declared:
            with pytest.raises(CapabilityError, match=f"^{next(iter(options))} needs .*; this is a {name} model$"):
                render_seeds(G, [0], **options)
            return
        img = render_seeds(G, [0, 1], batch_size=2, **options)
        assert torch.isfinite(img).all()
        if capability == "chunks":  # chunked and one-shot renders agree
            assert torch.allclose(img, render_seeds(G, [0, 1], batch_size=2, chunk_points=10**9), atol=1e-5)
        if capability in ("truncation", "classes"):
            assert not torch.allclose(img, render_seeds(G, [0, 1], batch_size=2))
        return
    if capability == "points":
        grid = G.default_grid()
        points = PointGrid.from_grid(grid)
        if not declared:
            with pytest.raises(CapabilityError, match=f"needs .*; this is a {name} model$"):
                render_seeds(G, [0], points)
            return
        assert torch.allclose(render_seeds(G, [0], points), render_seeds(G, [0], grid).flatten(2), atol=1e-5)
        return
    if capability == "mixing":  # per-layer styles: a generator with several style inputs
        if declared:
            assert G.num_ws > 1 and hasattr(G, "synthesis")
        return
    raise AssertionError(f"the suite does not exercise capability {capability!r}: add it here")


def test_render_checks_its_options_itself(family_run):
    """The capability check lives in the generator's `render`, so every caller gets it."""
    name, _, G, _ = family_run
    latents = G.latents([0], G.default_grid())
    for capability, options in OPTION_ASKS.items():
        if capability not in G.capabilities:
            with pytest.raises(CapabilityError):
                G.render(latents, None, RenderOptions(**options))


def test_shift_by_zero_is_the_training_render(family_run):
    _, _, G, _ = family_run
    if "shift" in G.capabilities:
        assert torch.equal(render_seeds(G, [3], G.default_grid().shift(0, 0)), render_seeds(G, [3]))
