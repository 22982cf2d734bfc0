import pytest
from PIL import Image

from conftest import tiny_run
from posgen import demo


def test_demo_trains_when_nothing_is_shipped_and_draws_shifts_and_a_wide_canvas(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "shipped_checkpoint", lambda: None)
    monkeypatch.setattr("posgen.presets.get_preset", lambda name: tiny_run(name))
    path = demo.run_demo(tmp_path, minutes=0.001)
    assert path.exists() and (tmp_path / "run" / "checkpoint.safetensors").exists()
    img = Image.open(path)
    # six seeds per column at 4x, one column per shift plus the 3x wider canvas
    assert img.height > 6 * 16 * demo.SCALE and img.width > (len(demo.SHIFTS) + 3) * 16 * demo.SCALE
    # a second call resumes the demo run instead of failing on the existing directory
    demo.run_demo(tmp_path, minutes=0.001)


def test_shipped_checkpoint_when_present_loads():
    shipped = demo.shipped_checkpoint()
    if shipped is None:
        pytest.skip("no checkpoint shipped in posgen/assets")
    G, _, state = demo.load(str(shipped))
    assert G.resolution == 32 and state["kimg"] > 0
