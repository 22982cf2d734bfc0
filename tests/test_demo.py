from PIL import Image

from conftest import tiny_run
from posgen import demo
from posgen.cli import main


def test_demo_trains_what_is_not_shipped_and_draws_every_model_on_every_canvas(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "shipped_checkpoint", lambda name: None)
    monkeypatch.setattr("posgen.presets.get_preset", lambda name: tiny_run(name))
    path, scores = demo.run_demo(tmp_path, minutes=0.001)
    assert path.exists() and set(scores) == {name for name, _ in demo.MODELS}
    assert all(0 <= s <= 1 for s in scores.values())
    for name, _ in demo.MODELS:
        assert (tmp_path / f"run-{name}" / "checkpoint.safetensors").exists()
    img = Image.open(path)
    # a row per model: three seeds at SCALE x, one column per canvas
    assert img.height > len(demo.MODELS) * 3 * 16 * demo.SCALE
    assert img.width > len(demo.COLUMNS) * 16 * demo.SCALE
    demo.run_demo(tmp_path, minutes=0.001)  # a second call resumes the demo runs


def test_demo_on_the_shipped_models_prints_their_shift_consistency(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "digits-baseline" in out and "digits-mspe-nopad" in out and (tmp_path / "digits-demo.png").exists()
