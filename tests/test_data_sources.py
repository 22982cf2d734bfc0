"""Image folder / zip / single-image datasets, image decoding and resizing, IDX files and the MNIST downloader."""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import struct
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posgen.data import mnist
from posgen.errors import DataError
from posgen.data.images import (
    ImageFolderDataset,
    SingleImageDataset,
    load_image,
    resize_image,
    to_rgb,
)
from posgen.data.mnist import download_mnist, load_mnist, read_idx, write_idx

BG = (10, 20, 30)


def _save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def _px(img: Image.Image, x: int = 0, y: int = 0) -> tuple[int, ...]:
    assert img.mode == "RGB"
    return tuple(img.getpixel((x, y)))


# ------------------------------------------------------------------------------------ load_image modes


def test_load_rgb_png_exact(tmp_path):
    p = _save(Image.new("RGB", (7, 5), (12, 34, 56)), tmp_path / "a.png")
    img = load_image(p, "a.png")
    assert img.mode == "RGB" and img.size == (7, 5) and _px(img, 6, 4) == (12, 34, 56)


def test_load_jpeg(tmp_path):
    p = _save(Image.new("RGB", (16, 16), (200, 100, 50)), tmp_path / "a.jpg", quality=95)
    px = np.asarray(load_image(p, "a.jpg")).astype(int)
    assert px.shape == (16, 16, 3)
    assert np.abs(px - np.array([200, 100, 50])).max() <= 3


def test_load_rgba_composites_over_background(tmp_path):
    arr = np.zeros((1, 3, 4), np.uint8)
    arr[0, 0] = (255, 0, 0, 0)      # fully transparent -> background
    arr[0, 1] = (255, 0, 0, 255)    # opaque red
    arr[0, 2] = (255, 255, 255, 128)  # half white over BG
    p = _save(Image.fromarray(arr, "RGBA"), tmp_path / "a.png")
    img = load_image(p, "a.png", background=BG)
    assert _px(img, 0) == BG
    assert _px(img, 1) == (255, 0, 0)
    expected = [round(b + (255 - b) * 128 / 255) for b in BG]
    assert all(abs(a - e) <= 1 for a, e in zip(_px(img, 2), expected))
    assert _px(load_image(p, "a.png"), 0) == (0, 0, 0)  # default background is black


def test_load_palette_with_transparency(tmp_path):
    im = Image.new("P", (2, 1))
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    im.putpixel((0, 0), 0)
    im.putpixel((1, 0), 1)
    for ext in ("png", "gif"):
        p = _save(im, tmp_path / f"p.{ext}", transparency=0)
        img = load_image(p, p.name, background=BG)
        assert _px(img, 0) == BG and _px(img, 1) == (255, 0, 0), ext
    p = _save(im, tmp_path / "opaque.png")  # no transparency: plain palette lookup
    assert _px(load_image(p, "opaque.png", background=BG), 0) == (0, 0, 0)


def test_load_16bit_png_scaled_by_bit_depth(tmp_path):
    arr = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    p = _save(Image.fromarray(arr), tmp_path / "g16.png")
    assert Image.open(p).mode.startswith("I")
    img = np.asarray(load_image(p, "g16.png"))
    assert img.dtype == np.uint8
    assert img[0, :, 0].tolist() == [0, 1, 128, 255]
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 0] == img[..., 2]).all()


def test_load_32bit_and_float_tiff(tmp_path):
    # mode I with a BitsPerSample=32 tag: scaled by 2**31-1
    p = _save(Image.fromarray(np.array([[0, 2**30, 2**31 - 1, -5]], dtype=np.int32)), tmp_path / "i32.tif")
    assert np.asarray(load_image(p, "i32"))[0, :, 0].tolist() == [0, 128, 255, 0]
    # big-endian 16-bit in memory
    big = Image.fromarray(np.array([[65535, 32768]], dtype=">u2"))
    assert big.mode == "I;16B"
    assert np.asarray(to_rgb(big))[0, :, 1].tolist() == [255, 128]
    # mode I without a bit-depth tag and values within 16 bits -> treated as 16-bit
    assert np.asarray(to_rgb(Image.fromarray(np.array([[65535, 0]], dtype=np.int32))))[0, :, 0].tolist() == [255, 0]
    # float data in [0, 1] -> x255; outside -> 0..255 clipped
    p = _save(Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)), tmp_path / "f.tif")
    assert np.asarray(load_image(p, "f"))[0, :, 2].tolist() == [0, 128, 255]
    f2 = Image.fromarray(np.array([[-3.0, 100.0, 300.0, np.nan]], dtype=np.float32))
    assert np.asarray(to_rgb(f2))[0, :, 0].tolist() == [0, 100, 255, 0]


def test_load_la_cmyk_1bit_ycbcr(tmp_path):
    la = Image.fromarray(np.array([[[100, 0], [100, 255]]], np.uint8), "LA")
    img = load_image(_save(la, tmp_path / "la.png"), "la", background=BG)
    assert _px(img, 0) == BG and _px(img, 1) == (100, 100, 100)

    cmyk = Image.new("CMYK", (2, 1), (0, 0, 0, 0))
    cmyk.putpixel((1, 0), (0, 0, 0, 255))
    img = load_image(_save(cmyk, tmp_path / "c.tif"), "c")
    assert _px(img, 0) == (255, 255, 255) and _px(img, 1) == (0, 0, 0)
    img = load_image(_save(cmyk, tmp_path / "c.jpg", quality=95), "cj")
    assert all(v >= 250 for v in _px(img, 0))

    one = Image.new("1", (2, 1), 0)
    one.putpixel((1, 0), 1)
    img = load_image(_save(one, tmp_path / "b.png"), "b")
    assert _px(img, 0) == (0, 0, 0) and _px(img, 1) == (255, 255, 255)

    grey = to_rgb(Image.new("YCbCr", (1, 1), (128, 128, 128)))
    assert all(abs(v - 128) <= 1 for v in _px(grey))
    assert _px(load_image(_save(Image.new("L", (1, 1), 77), tmp_path / "l.bmp"), "l")) == (77, 77, 77)


def test_load_corrupt_file_names_it(tmp_path):
    p = tmp_path / "broken.png"
    p.write_bytes(b"definitely not a png\n\nsecond line")
    with pytest.raises(DataError, match=r"cannot read image .*broken\.png") as ei:
        load_image(p, str(p))
    assert "\n" not in str(ei.value)
    # a truncated real PNG too
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good, "PNG", compress_level=0)
    (tmp_path / "trunc.png").write_bytes(good.getvalue()[:200])
    with pytest.raises(DataError, match="trunc.png"):
        load_image(tmp_path / "trunc.png", "trunc.png")


# ------------------------------------------------------------------------------------------ resize


@pytest.mark.parametrize("mode", ["crop", "stretch", "pad"])
@pytest.mark.parametrize("src,dst", [((50, 30), (24, 40)), ((30, 50), (40, 24)), ((9, 9), (16, 16)), ((64, 32), (32, 32))])
def test_resize_exact_size(mode, src, dst):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (*src, 3), dtype=np.uint8))  # src is (H, W)
    out = resize_image(img, dst, mode)
    assert out.mode == "RGB" and out.size == (dst[1], dst[0])


def test_resize_pad_is_black_and_centered():
    img = Image.new("RGB", (40, 20), (255, 255, 255))  # W=40, H=20
    out = np.asarray(resize_image(img, (32, 32), "pad"))  # fits as 32x16, 8 black rows above and below
    assert (out[:8] == 0).all() and (out[-8:] == 0).all()
    assert (out[8:24] == 255).all()
    out = np.asarray(resize_image(Image.new("RGB", (10, 30), (255, 255, 255)), (30, 20), "pad"))  # tall source
    assert (out[:, :5] == 0).all() and (out[:, -5:] == 0).all() and (out[:, 5:15] == 255).all()


def test_resize_crop_keeps_center():
    arr = np.zeros((20, 60, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:40] = (0, 255, 0)
    arr[:, 40:] = (0, 0, 255)
    out = np.asarray(resize_image(Image.fromarray(arr), (20, 20), "crop"))
    assert (out == np.array([0, 255, 0], np.uint8)).all()
    out = np.asarray(resize_image(Image.fromarray(arr), (10, 10), "crop")).astype(int)  # downscaled center
    assert np.abs(out[2:8, 2:8] - np.array([0, 255, 0])).max() <= 2
    stretched = np.asarray(resize_image(Image.fromarray(arr), (10, 30), "stretch")).astype(int)
    assert stretched[5, 2, 0] > 240 and stretched[5, 27, 2] > 240  # stretch keeps the sides


def test_resize_rejects_bad_mode():
    with pytest.raises(ValueError):
        resize_image(Image.new("RGB", (4, 4)), (2, 2), "zoom")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- image datasets


def _make_tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Images of several formats/modes, nested; returns relative name -> expected RGB at the center."""
    colors = {
        "a.png": (255, 0, 0),
        "b.JPG": (0, 200, 0),
        "sub/c.bmp": (0, 0, 255),
        "sub/deeper/d.png": (40, 50, 60),
        "sub/e.TIFF": (255, 255, 255),
    }
    _save(Image.new("RGB", (20, 10), colors["a.png"]), root / "a.png")
    _save(Image.new("RGB", (16, 16), colors["b.JPG"]), root / "b.JPG", format="JPEG", quality=95)
    _save(Image.new("RGB", (12, 30), colors["sub/c.bmp"]), root / "sub/c.bmp")
    _save(Image.new("RGBA", (8, 8), (*colors["sub/deeper/d.png"], 255)), root / "sub/deeper/d.png")
    _save(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), root / "sub/e.TIFF")
    (root / "notes.txt").write_text("not an image")
    (root / "sub" / "._a.png").write_bytes(b"macOS resource fork")
    return colors


def test_folder_dataset_nested_sorted(tmp_path):
    colors = _make_tree(tmp_path / "imgs")
    ds = ImageFolderDataset(tmp_path / "imgs", (12, 20))
    assert ds.files == sorted(colors)
    assert len(ds) == 5
    for i, name in enumerate(ds.files):
        x = ds[i]
        assert x.dtype == torch.uint8 and x.shape == (3, 12, 20)
        assert (x[:, 6, 10].int() - torch.tensor(colors[name])).abs().max() <= 3, name
    sq = ImageFolderDataset(str(tmp_path / "imgs"), 8, resize="pad")
    assert sq[0].shape == (3, 8, 8)


def test_zip_dataset_and_dataloader_workers(tmp_path):
    colors = _make_tree(tmp_path / "imgs")
    zpath = tmp_path / "imgs.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted((tmp_path / "imgs").rglob("*")):
            if p.is_file():
                zf.write(p, "top/" + p.relative_to(tmp_path / "imgs").as_posix())
        zf.writestr("__MACOSX/top/._a.png", b"junk")
    ds = ImageFolderDataset(zpath, (16, 16), resize="stretch")
    assert ds.files == sorted("top/" + n for n in colors)
    first = ds[0]  # opens a handle in this process before the workers start
    folder = ImageFolderDataset(tmp_path / "imgs", (16, 16), resize="stretch")
    assert torch.equal(first, folder[0])
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    batch = torch.cat(list(loader))
    assert batch.shape == (5, 3, 16, 16) and batch.dtype == torch.uint8
    assert torch.equal(batch, torch.stack([folder[i] for i in range(len(folder))]))


def test_dataset_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist.*nowhere"):
        ImageFolderDataset(tmp_path / "nowhere", 8)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match=r"no images found in .*empty"):
        ImageFolderDataset(empty, 8)
    txt = tmp_path / "list.txt"
    txt.write_text("a.png")
    with pytest.raises(DataError, match=r"neither a directory nor a \.zip.*list\.txt"):
        ImageFolderDataset(txt, 8)
    bad_zip = tmp_path / "bad.zip"
    bad_zip.write_bytes(b"PK\x03\x04 but not really a zip")
    with pytest.raises(DataError, match=r"not a valid zip archive: .*bad\.zip") as ei:
        ImageFolderDataset(bad_zip, 8)
    assert "\n" not in str(ei.value)
    no_img_zip = tmp_path / "noimg.zip"
    with zipfile.ZipFile(no_img_zip, "w") as zf:
        zf.writestr("x.txt", "hi")
    with pytest.raises(DataError, match=r"no images found in .*noimg\.zip"):
        ImageFolderDataset(no_img_zip, 8)
    with pytest.raises(ValueError):
        ImageFolderDataset(empty, 8, resize="zoom")


def test_corrupt_file_and_member_named_at_load_time(tmp_path):
    d = tmp_path / "d"
    _save(Image.new("RGB", (4, 4)), d / "good.png")
    (d / "sub").mkdir()
    (d / "sub" / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    ds = ImageFolderDataset(d, 4)
    assert ds[0].shape == (3, 4, 4)
    with pytest.raises(DataError, match=r"cannot read image .*sub/bad\.jpg"):
        ds[1]
    z = tmp_path / "z.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(d / "good.png", "good.png")
        zf.writestr("inner/bad.png", b"not png")
    zds = ImageFolderDataset(z, 4)
    assert zds[0].shape == (3, 4, 4)
    with pytest.raises(DataError, match=r"cannot read image inner/bad\.png in .*z\.zip"):
        zds[1]


def test_single_image_dataset(tmp_path):
    p = _save(Image.new("RGBA", (30, 20), (1, 2, 3, 0)), tmp_path / "one.png")
    ds = SingleImageDataset(p, background=BG)
    assert len(ds) == 1
    x = ds[0]
    assert x.dtype == torch.uint8 and x.shape == (3, 20, 30)
    assert x[:, 0, 0].tolist() == list(BG)
    assert SingleImageDataset(p, (16, 8), resize="pad")[0].shape == (3, 16, 8)
    assert SingleImageDataset(p, 12)[0].shape == (3, 12, 12)
    with pytest.raises(IndexError):
        ds[1]
    with pytest.raises(DataError, match="does not exist.*missing.png"):
        SingleImageDataset(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(DataError, match=r"cannot read image .*bad\.png"):
        SingleImageDataset(tmp_path / "bad.png")


# ------------------------------------------------------------------------------------------------ IDX


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    arr = (np.arange(2 * 3 * 4) * 7 - 20).reshape(2, 3, 4).astype(dtype)
    path = write_idx(tmp_path / name, arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, arr)
    back[0, 0, 0] = 1  # writable


def test_idx_hand_written_bytes_and_gzip_by_magic(tmp_path):
    raw = struct.pack(">BBBBII", 0, 0, 0x0B, 2, 2, 3) + struct.pack(">6h", 1, -2, 3, -4, 5, 300)
    (tmp_path / "plain.gz").write_bytes(raw)  # .gz name, but not gzipped
    (tmp_path / "packed.bin").write_bytes(gzip.compress(raw))  # gzipped, no .gz name
    for name in ("plain.gz", "packed.bin"):
        a = read_idx(tmp_path / name)
        assert a.dtype == np.int16 and a.tolist() == [[1, -2, 3], [-4, 5, 300]]
    labels = struct.pack(">BBBBI", 0, 0, 8, 1, 3) + bytes([7, 0, 9])
    (tmp_path / "labels").write_bytes(labels)
    assert read_idx(tmp_path / "labels").tolist() == [7, 0, 9]


def test_idx_malformed(tmp_path):
    good = struct.pack(">BBBBI", 0, 0, 8, 1, 10) + bytes(range(10))
    cases = {
        "trunc.idx": good[:-3],
        "trunchead.idx": good[:6],
        "long.idx": good + b"\0",
        "magic.idx": b"\x01\x00" + good[2:],
        "type.idx": good[:2] + b"\x07" + good[3:],
        "tiny.idx": b"\0",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=name.replace(".", r"\.")):
            read_idx(tmp_path / name)
    with pytest.raises(DataError, match="truncated IDX file"):
        read_idx(tmp_path / "trunc.idx")
    (tmp_path / "gz_trunc.gz").write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(DataError, match=r"gz_trunc\.gz"):
        read_idx(tmp_path / "gz_trunc.gz")
    with pytest.raises(DataError, match="absent"):
        read_idx(tmp_path / "absent.idx")


# ------------------------------------------------------------------------------------------- MNIST


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch) -> Path:
    """Four tiny MNIST-format files in a 'server' folder, with their MD5s patched into MNIST_FILES."""
    srv = tmp_path / "server"
    srv.mkdir()
    rng = np.random.default_rng(1)
    for split, n in (("train", 6), ("t10k", 4)):
        write_idx(srv / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(srv / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    assert set(p.name for p in srv.iterdir()) == set(mnist.MNIST_FILES)
    for name in mnist.MNIST_FILES:
        monkeypatch.setitem(mnist.MNIST_FILES, name, hashlib.md5((srv / name).read_bytes()).hexdigest())
    monkeypatch.setattr(mnist, "MNIST_MIRRORS", ["http://0.0.0.0:9/must-not-be-used/"])
    return srv


def test_mnist_checksums_are_the_torchvision_md5s():
    assert set(mnist.MNIST_FILES) == {
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
    }
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in mnist.MNIST_FILES.values())
    assert mnist.MNIST_MIRRORS[0].startswith("https://")


def test_download_mnist_file_mirror_with_fallback(tmp_path, fake_mnist):
    cache = tmp_path / "cache"
    dead = (tmp_path / "no-such-mirror").as_uri() + "/"
    root = download_mnist(cache, progress=False, mirrors=[dead, fake_mnist.as_uri()])
    assert root == cache
    for name in mnist.MNIST_FILES:
        assert (cache / name).read_bytes() == (fake_mnist / name).read_bytes()
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]
    images, labels = load_mnist(cache, train=True)
    assert images.dtype == np.uint8 and images.shape == (6, 28, 28) and labels.shape == (6,)
    np.testing.assert_array_equal(images, read_idx(fake_mnist / "train-images-idx3-ubyte.gz"))
    timg, tlab = load_mnist(cache, train=False)
    assert timg.shape == (4, 28, 28) and tlab.dtype == np.uint8

    calls = []

    def opener(url):
        calls.append(url)
        raise AssertionError("nothing should be downloaded again")

    download_mnist(cache, progress=False, mirrors=["file:///unused/"], opener=opener)
    assert calls == []


def test_download_mnist_local_http_server(tmp_path, fake_mnist, monkeypatch):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(fake_mnist))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setattr(mnist, "MNIST_MIRRORS", [f"http://127.0.0.1:{server.server_address[1]}/"])
        monkeypatch.setenv("POSGEN_CACHE", str(tmp_path / "envcache"))
        images, labels = load_mnist(download=True)
    finally:
        server.shutdown()
        server.server_close()
    assert images.shape == (6, 28, 28) and labels.shape == (6,)
    assert (tmp_path / "envcache" / "mnist" / "train-labels-idx1-ubyte.gz").is_file()


def test_download_mnist_checksum_mismatch(tmp_path, fake_mnist, monkeypatch):
    monkeypatch.setitem(mnist.MNIST_FILES, "t10k-images-idx3-ubyte.gz", "0" * 32)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "t10k-images-idx3-ubyte.gz").write_bytes(b"stale partial download")
    with pytest.raises(DataError, match=r"checksum mismatch for t10k-images-idx3-ubyte\.gz"):
        download_mnist(cache, progress=False, mirrors=[fake_mnist.as_uri() + "/"])
    left = sorted(p.name for p in cache.iterdir())
    assert "t10k-images-idx3-ubyte.gz" not in left
    assert not [n for n in left if n.endswith(".tmp")]


def test_download_mnist_all_mirrors_fail(tmp_path, fake_mnist):
    with pytest.raises(DataError, match=r"could not download train-images-idx3-ubyte\.gz"):
        download_mnist(tmp_path / "c", progress=False, mirrors=[(tmp_path / "x").as_uri(), (tmp_path / "y").as_uri()])
    assert list((tmp_path / "c").iterdir()) == []


def test_load_mnist_missing_says_how_to_download(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"missing in .*empty.*download=True"):
        load_mnist(tmp_path / "empty")
    monkeypatch.setenv("POSGEN_CACHE", str(tmp_path / "pc"))
    assert mnist.default_mnist_root() == tmp_path / "pc" / "mnist"
    monkeypatch.delenv("POSGEN_CACHE")
    assert mnist.default_mnist_root() == Path.home() / ".cache" / "posgen" / "mnist"
