"""The FID Inception-v3 (architecture, weights loading and checks, preprocessing) and posgen.download."""
from __future__ import annotations

import hashlib
import io
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from posgen import download
from posgen.download import DownloadError, cache_root, fetch, file_digest
from posgen.metrics import inception
from posgen.errors import MetricError
from posgen.metrics.inception import FIDInceptionV3, load_inception, resolve_weights

# ------------------------------------------------------------------------- the expected architecture
# Written out independently of the module, from torchvision's Inception3 layer table with pytorch-fid's
# changes (1008 classes, no AuxLogits): each conv is (in, out, kernel_h, kernel_w) and stands for
# `<name>.conv.weight` [out, in, kh, kw] plus `<name>.bn.{weight,bias,running_mean,running_var}` [out]
# and `<name>.bn.num_batches_tracked` [].


def _block_a(cin, pool):
    return {"branch1x1": (cin, 64, 1, 1), "branch5x5_1": (cin, 48, 1, 1), "branch5x5_2": (48, 64, 5, 5),
            "branch3x3dbl_1": (cin, 64, 1, 1), "branch3x3dbl_2": (64, 96, 3, 3), "branch3x3dbl_3": (96, 96, 3, 3),
            "branch_pool": (cin, pool, 1, 1)}


def _block_b(cin):
    return {"branch3x3": (cin, 384, 3, 3), "branch3x3dbl_1": (cin, 64, 1, 1), "branch3x3dbl_2": (64, 96, 3, 3),
            "branch3x3dbl_3": (96, 96, 3, 3)}


def _block_c(cin, c7):
    return {"branch1x1": (cin, 192, 1, 1), "branch7x7_1": (cin, c7, 1, 1), "branch7x7_2": (c7, c7, 1, 7),
            "branch7x7_3": (c7, 192, 7, 1), "branch7x7dbl_1": (cin, c7, 1, 1), "branch7x7dbl_2": (c7, c7, 7, 1),
            "branch7x7dbl_3": (c7, c7, 1, 7), "branch7x7dbl_4": (c7, c7, 7, 1), "branch7x7dbl_5": (c7, 192, 1, 7),
            "branch_pool": (cin, 192, 1, 1)}


def _block_d(cin):
    return {"branch3x3_1": (cin, 192, 1, 1), "branch3x3_2": (192, 320, 3, 3), "branch7x7x3_1": (cin, 192, 1, 1),
            "branch7x7x3_2": (192, 192, 1, 7), "branch7x7x3_3": (192, 192, 7, 1), "branch7x7x3_4": (192, 192, 3, 3)}


def _block_e(cin):
    return {"branch1x1": (cin, 320, 1, 1), "branch3x3_1": (cin, 384, 1, 1), "branch3x3_2a": (384, 384, 1, 3),
            "branch3x3_2b": (384, 384, 3, 1), "branch3x3dbl_1": (cin, 448, 1, 1), "branch3x3dbl_2": (448, 384, 3, 3),
            "branch3x3dbl_3a": (384, 384, 1, 3), "branch3x3dbl_3b": (384, 384, 3, 1), "branch_pool": (cin, 192, 1, 1)}


CONVS: dict[str, tuple[int, int, int, int]] = {
    "Conv2d_1a_3x3": (3, 32, 3, 3), "Conv2d_2a_3x3": (32, 32, 3, 3), "Conv2d_2b_3x3": (32, 64, 3, 3),
    "Conv2d_3b_1x1": (64, 80, 1, 1), "Conv2d_4a_3x3": (80, 192, 3, 3),
}
for _block, _convs in {
    "Mixed_5b": _block_a(192, 32), "Mixed_5c": _block_a(256, 64), "Mixed_5d": _block_a(288, 64),
    "Mixed_6a": _block_b(288),
    "Mixed_6b": _block_c(768, 128), "Mixed_6c": _block_c(768, 160), "Mixed_6d": _block_c(768, 160),
    "Mixed_6e": _block_c(768, 192),
    "Mixed_7a": _block_d(768), "Mixed_7b": _block_e(1280), "Mixed_7c": _block_e(2048),
}.items():
    CONVS.update({f"{_block}.{k}": v for k, v in _convs.items()})


def expected_shapes(with_counters: bool = True) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for name, (cin, cout, kh, kw) in CONVS.items():
        shapes[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for buf in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{buf}"] = (cout,)
        if with_counters:
            shapes[f"{name}.bn.num_batches_tracked"] = ()
    shapes["fc.weight"] = (1008, 2048)
    shapes["fc.bias"] = (1008,)
    return shapes


def random_state(seed: int = 0, with_counters: bool = False) -> dict[str, torch.Tensor]:
    """A state dict of the expected shapes with weights that keep activations well scaled (He init,
    BatchNorm near identity), as a plain dict of tensors like the real file."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in expected_shapes(with_counters).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("conv.weight") or key == "fc.weight":
            state[key] = torch.randn(shape, generator=g) * (2 / (shape[1] * (shape[2] * shape[3] if len(shape) == 4 else 1))) ** 0.5
        elif key.endswith(("bn.weight", "running_var")):
            state[key] = 0.8 + 0.4 * torch.rand(shape, generator=g)
        else:  # bn.bias, running_mean, fc.bias
            state[key] = 0.1 * torch.randn(shape, generator=g)
    return state


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(random_state(), path)
    return path


@pytest.fixture(scope="module")
def model(weights_file) -> FIDInceptionV3:
    return load_inception(weights=weights_file, verify=False)


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """A fresh empty cache, no weights override from the environment, downloads failing loudly."""
    monkeypatch.setenv("POSGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    calls: list[str] = []

    def offline(url):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download, "urlopen", offline)
    return calls


# ------------------------------------------------------------------------------------- architecture


def test_state_dict_keys_and_shapes():
    net = FIDInceptionV3()
    sd = net.state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected_shapes()
    assert len(CONVS) == 94 and len(sd) == 94 * 6 + 2
    # Trainable parameters: torchvision documents 27,161,264 for inception_v3 (1000 classes, with
    # AuxLogits = conv0 768*128 + 2*128, conv1 128*768*5*5 + 2*768, fc 768*1000 + 1000 = 3,326,696);
    # without AuxLogits and with 1008 classes (+ 8 * 2049) that is 23,850,960.
    assert sum(p.numel() for p in net.parameters()) == 27_161_264 - 3_326_696 + 8 * 2049 == 23_850_960
    assert not any(p.requires_grad for p in net.parameters())
    # ... and the BatchNorm running means and variances add 2 * 17,216 stored numbers.
    assert sum(v.numel() for k, v in sd.items() if "num_batches" not in k) == 23_885_392
    samples = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_4a_3x3.bn.running_mean": (192,),
        "Mixed_5b.branch5x5_1.bn.running_var": (48,),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
        "Mixed_6b.branch7x7dbl_2.conv.weight": (128, 128, 7, 1),
        "Mixed_6e.branch7x7_2.conv.weight": (192, 192, 1, 7),
        "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
        "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
        "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "Mixed_7c.branch_pool.bn.bias": (192,),
        "fc.weight": (1008, 2048),
    }
    assert {k: tuple(sd[k].shape) for k in samples} == samples
    assert not any(k.startswith("AuxLogits") for k in sd)
    bn = net.Mixed_6c.branch7x7_3.bn
    assert bn.eps == 0.001 and net.Conv2d_2b_3x3.conv.bias is None
    assert net.name == "inception" and net.feature_dim == 2048


@pytest.mark.parametrize("block,pool_channels,pool", [
    ("Mixed_5b", 32, "avg"), ("Mixed_5d", 64, "avg"), ("Mixed_6b", 192, "avg"), ("Mixed_6e", 192, "avg"),
    ("Mixed_7b", 192, "avg"), ("Mixed_7c", 192, "max"),
])
def test_pool_branch_is_tf_style(model, block, pool_channels, pool):
    """The pool branch (the last channels) averages without the padded zeros, or max-pools in 7c."""
    blk = getattr(model, block)
    cin = blk.branch_pool.conv.in_channels
    x = torch.randn(2, cin, 7, 7)
    with torch.no_grad():
        got = blk(x)[:, -pool_channels:]
        tf_avg = blk.branch_pool(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
        torch_avg = blk.branch_pool(F.avg_pool2d(x, 3, 1, 1, count_include_pad=True))
        mx = blk.branch_pool(F.max_pool2d(x, 3, 1, 1))
    want, others = (tf_avg, (torch_avg, mx)) if pool == "avg" else (mx, (tf_avg, torch_avg))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for other in others:
        assert not torch.allclose(got, other, rtol=1e-3, atol=1e-3)


# ------------------------------------------------------------------------------- features & weights


class _Stop(Exception):
    pass


def network_input(model: FIDInceptionV3, images: torch.Tensor) -> torch.Tensor:
    """What the first convolution receives for `images` (the forward pass is cut off there)."""
    seen = []

    def grab(module, args):
        seen.append(args[0].detach().clone())
        raise _Stop

    hook = model.Conv2d_1a_3x3.register_forward_pre_hook(grab)
    try:
        with pytest.raises(_Stop):
            model(images)
    finally:
        hook.remove()
    return seen[0]


def test_preprocessing(model):
    x299 = torch.rand(2, 3, 299, 299) * 2 - 1
    torch.testing.assert_close(network_input(model, x299), x299, rtol=0, atol=0)  # fed as is
    x64 = torch.rand(2, 3, 64, 64) * 2 - 1
    got = network_input(model, x64)
    assert got.shape == (2, 3, 299, 299)
    torch.testing.assert_close(got, F.interpolate(x64, size=(299, 299), mode="bilinear", align_corners=False),
                               rtol=0, atol=0)
    assert not torch.allclose(got, F.interpolate(x64, size=(299, 299), mode="bilinear", align_corners=True))
    grey = torch.rand(1, 1, 40, 56, dtype=torch.float64) * 2 - 1
    got = network_input(model, grey)
    assert got.dtype == torch.float32 and got.shape == (1, 3, 299, 299)
    torch.testing.assert_close(got, F.interpolate(grey.float(), size=(299, 299), mode="bilinear",
                                                  align_corners=False).repeat(1, 3, 1, 1), rtol=0, atol=0)
    with pytest.raises(ValueError, match="1 or 3"):
        model(torch.zeros(1, 4, 32, 32))
    with pytest.raises(ValueError, match="1 or 3"):
        model(torch.zeros(3, 32, 32))


def test_features_from_generated_weights(model, weights_file):
    saved = torch.load(weights_file, weights_only=True)
    for key in ("Mixed_7c.branch3x3dbl_3b.conv.weight", "Mixed_6d.branch7x7_1.bn.running_var", "fc.bias"):
        assert torch.equal(model.state_dict()[key], saved[key]), key
    assert not model.training
    model.train()
    assert not model.training and not model.Mixed_5b.branch1x1.bn.training  # stays in eval mode

    # one image, two ways (a full forward pass is ~1 s of CPU, so just two of them):
    grey = torch.rand(1, 1, 64, 64) * 2 - 1  # a 64x64 one-channel image ...
    rgb299 = network_input(model, grey)  # ... and the 299x299 RGB image the network sees for it
    seen = {}
    hook = model.Mixed_7c.register_forward_hook(lambda m, a, out: seen.__setitem__("7c", out.clone()))
    try:
        feats = model(grey)
    finally:
        hook.remove()
    assert feats.shape == (1, 2048) and feats.dtype == torch.float32 and torch.isfinite(feats).all()
    assert not feats.requires_grad
    assert seen["7c"].shape == (1, 2048, 8, 8)
    torch.testing.assert_close(feats, seen["7c"].mean(dim=(2, 3)))  # pool3 = global average of Mixed_7c
    assert feats.std() > 0.1 * feats.abs().mean() > 0  # neither dead nor constant
    torch.testing.assert_close(model(rgb299), feats, rtol=1e-4, atol=1e-5)


def test_load_tolerates_counters_and_rejects_wrong_keys(tmp_path):
    net = FIDInceptionV3()
    with_counters = random_state(1, with_counters=True)
    inception._load_state(net, with_counters, tmp_path / "w.pth")
    assert torch.equal(net.fc.bias, with_counters["fc.bias"])
    assert torch.equal(net.Mixed_6c.branch7x7dbl_4.bn.running_mean, with_counters["Mixed_6c.branch7x7dbl_4.bn.running_mean"])

    state = random_state(2)
    del state["Mixed_6c.branch7x7dbl_4.bn.running_mean"]
    state["AuxLogits.fc.weight"] = torch.zeros(1008, 768)
    state["Mixed_5b.branch_pool.conv.weight"] = torch.zeros(64, 192, 1, 1)
    with pytest.raises(MetricError) as ei:
        inception._load_state(FIDInceptionV3(), state, tmp_path / "w.pth")
    msg = str(ei.value)
    assert "\n" not in msg and str(tmp_path / "w.pth") in msg
    assert "missing Mixed_6c.branch7x7dbl_4.bn.running_mean" in msg
    assert "unexpected AuxLogits.fc.weight" in msg
    assert "wrong shape Mixed_5b.branch_pool.conv.weight [64, 192, 1, 1] for [32, 192, 1, 1]" in msg
    with pytest.raises(MetricError, match="not a state dict of tensors"):
        inception._load_state(FIDInceptionV3(), {"state_dict": state}, tmp_path / "w.pth")

    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a torch file\nat all")
    with pytest.raises(MetricError, match=r"cannot read Inception weights .*broken\.pth") as ei:
        load_inception(weights=path, verify=False)
    assert "\n" not in str(ei.value)


def test_wrong_checksum_is_refused(no_env, monkeypatch, tmp_path):
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    path.write_bytes(b"an impostor")
    got = hashlib.sha256(b"an impostor").hexdigest()
    for how in ("argument", "environment"):
        if how == "environment":
            monkeypatch.setenv(inception.WEIGHTS_ENV, str(path))
        with pytest.raises(MetricError) as ei:
            load_inception(weights=path if how == "argument" else None)
        msg = str(ei.value)
        assert "\n" not in msg
        assert f"refusing Inception weights {path}: SHA-256 {got}, expected {inception.WEIGHTS_SHA256}" in msg
    assert no_env == []  # an explicit file is never replaced by a download


def test_offline_message_names_file_cache_and_url(no_env, tmp_path):
    cache_file = tmp_path / "cache" / "weights" / "pt_inception-2015-12-05-6726825d.pth"
    assert inception.default_weights_path() == cache_file
    with pytest.raises(MetricError) as ei:
        load_inception()
    msg = str(ei.value)
    assert "\n" not in msg
    for part in ("pt_inception-2015-12-05-6726825d.pth", str(cache_file), "is missing",
                 "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
                 "--inception-weights PATH", "POSGEN_INCEPTION_WEIGHTS=PATH", "Temporary failure in name resolution"):
        assert part in msg, part
    assert no_env == [inception.WEIGHTS_URL]
    assert list(cache_file.parent.iterdir()) == []  # no partial download left behind

    cache_file.write_bytes(b"a truncated old download")
    with pytest.raises(MetricError, match=r"cache file .*6726825d\.pth has the wrong SHA-256 and the download failed"):
        load_inception()
    with pytest.raises(MetricError, match=r"Inception weights file not found: .*nowhere\.pth"):
        load_inception(weights=tmp_path / "nowhere.pth")


def test_cache_download_and_resolution_order(no_env, monkeypatch, tmp_path):
    served = tmp_path / "server" / inception.WEIGHTS_NAME
    served.parent.mkdir()
    served.write_bytes(b"stand-in for the weights" * 1000)
    monkeypatch.setattr(inception, "WEIGHTS_SHA256", hashlib.sha256(served.read_bytes()).hexdigest())
    monkeypatch.setattr(download, "urlopen", lambda url: io.BytesIO(served.read_bytes()))
    cached = inception.default_weights_path()
    assert resolve_weights() == cached  # verified download into the cache
    assert cached.read_bytes() == served.read_bytes()

    def must_not_download(url):
        raise AssertionError(f"downloaded {url} again")

    monkeypatch.setattr(download, "urlopen", must_not_download)
    assert resolve_weights() == cached
    other = tmp_path / "other.pth"
    other.write_bytes(b"x")
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(other))
    assert resolve_weights(verify=False) == other  # the environment beats the cache
    assert resolve_weights(served) == served  # the argument beats the environment
    with pytest.raises(MetricError, match="refusing"):
        resolve_weights()  # ... and the environment's file is checked too


# ------------------------------------------------------------------------------------ posgen.download


def test_cache_root_and_file_digest(tmp_path, monkeypatch):
    monkeypatch.setenv("POSGEN_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("POSGEN_CACHE")
    assert cache_root() == Path.home() / ".cache" / "posgen"
    p = tmp_path / "f.bin"
    p.write_bytes(bytes(range(256)) * 5000)
    assert file_digest(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    assert file_digest(p, "md5") == hashlib.md5(p.read_bytes()).hexdigest()


def test_fetch_file_url_round_trip(tmp_path):
    src = tmp_path / "server" / "blob.bin"
    src.parent.mkdir()
    src.write_bytes(b"\x00posgen\xff" * 50_000)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "cache" / "deep" / "blob.bin"
    dead = (tmp_path / "server" / "missing.bin").as_uri()
    assert fetch([dead, src.as_uri()], dest, sha.upper(), progress=False) == dest  # falls back to the second URL
    assert dest.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["blob.bin"]

    def must_not_open(url):
        raise AssertionError("already cached")

    assert fetch(["file:///unused"], dest, sha, opener=must_not_open, progress=False) == dest
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    dest2 = tmp_path / "cache" / "blob-md5.bin"
    fetch([src.as_uri()], dest2, md5, algorithm="md5", progress=False)
    assert dest2.read_bytes() == src.read_bytes()


def test_fetch_checksum_mismatch(tmp_path):
    src = tmp_path / "blob.bin"
    src.write_bytes(b"hello")
    dest = tmp_path / "cache" / "blob.bin"
    with pytest.raises(DownloadError) as ei:
        fetch([src.as_uri()], dest, "0" * 64, progress=False)
    got = hashlib.sha256(b"hello").hexdigest()
    assert str(ei.value) == f"checksum mismatch for blob.bin from {src.as_uri()}: sha256 {got}, expected {'0' * 64}"
    assert list(dest.parent.iterdir()) == []


class _Broken(io.BytesIO):
    """A stream that delivers some bytes and then fails like a dropped connection (or Ctrl-C)."""

    def __init__(self, exc: BaseException):
        super().__init__(b"partial" * 1000)
        self.exc = exc

    def read(self, n=-1):
        if self.tell() >= 3000:
            raise self.exc
        return super().read(min(n, 1000))


def test_fetch_failure_leaves_no_partial_file(tmp_path):
    dest = tmp_path / "cache" / "blob.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"old contents")
    sha = hashlib.sha256(b"new contents").hexdigest()
    with pytest.raises(DownloadError) as ei:
        fetch(["http://a/blob.bin", "http://b/blob.bin"], dest, sha, progress=False,
              opener=lambda url: _Broken(ConnectionResetError(104, "Connection reset by peer")))
    msg = str(ei.value)
    assert msg.startswith(f"could not download blob.bin into {dest.parent}: http://a/blob.bin: ")
    assert msg.endswith("http://b/blob.bin: [Errno 104] Connection reset by peer") and "\n" not in msg
    assert sorted(p.name for p in dest.parent.iterdir()) == ["blob.bin"]
    assert dest.read_bytes() == b"old contents"  # never replaced by a partial download

    with pytest.raises(KeyboardInterrupt):
        fetch(["http://a/blob.bin"], dest, sha, progress=False, opener=lambda url: _Broken(KeyboardInterrupt()))
    assert sorted(p.name for p in dest.parent.iterdir()) == ["blob.bin"]
    with pytest.raises(DownloadError, match="no URL"):
        fetch([], tmp_path / "x", sha, progress=False)
