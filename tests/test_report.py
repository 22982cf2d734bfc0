import json
import re

from posgen.apps.report import ReportSettings, write_report
from posgen.cli import main


def test_report_is_self_contained_and_has_every_section(trained_run, tmp_path, monkeypatch):
    monkeypatch.setenv("POSGEN_CACHE", str(tmp_path / "cache"))
    settings = ReportSettings(fid_samples=16, eq_samples=2, shift_samples=2, noise_draws=3, noise_latents=2,
                              progress=False)
    path = write_report([str(trained_run), str(trained_run)], tmp_path / "rep", settings)
    text = path.read_text()
    sources = re.findall(r"<img src='([^']*)'", text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http" not in text.replace("http-equiv", "")  # nothing fetched from outside
    for section in ("training grid", "shift (R/4, R/4 + 0.5)", "roll (0, R/2)", "zoom 2x", "2x wider",
                    "shift consistency", "noise maps", "FID 1.5x", "EQR"):
        assert section in text, section
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    m = data["models"][0]
    assert set(m["fid"]) == {"1x", "1.5x", "2x"} and all(v > 0 for v in m["fid"].values())
    assert m["metrics"]["shift-consistency"]["mean"] <= 1 and m["noise_std_mean"] >= 0
    assert data["models"][0]["fid"] == data["models"][1]["fid"]  # same model, same numbers


def test_report_cli_rejects_a_missing_checkpoint(tmp_path, capsys):
    assert main(["report", "--checkpoint", "/no/such/run", "--out", str(tmp_path)]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_report_accepts_a_cips_run(trained_cips_run, tmp_path, monkeypatch):
    monkeypatch.setenv("POSGEN_CACHE", str(tmp_path / "cache"))
    settings = ReportSettings(fid_samples=16, eq_samples=2, shift_samples=2, noise_draws=3, noise_latents=2,
                              progress=False)
    write_report([str(trained_cips_run)], tmp_path / "rep", settings)
    m = json.loads((tmp_path / "rep" / "report.json").read_text())["models"][0]
    assert m["preset"] == "digits-cips" and all(v > 0 for v in m["fid"].values())
    assert m["noise_std_mean"] == 0  # CIPS has no noise inputs
    assert m["metrics"]["eqt"]["eqt"] == "inf"  # pixels independent: whole-pixel shifts are exact
