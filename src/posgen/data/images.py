"""Image files as training data: decoding any PIL mode to RGB, resizing, folder / zip / single-image datasets."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import IO, Literal, Union

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from posgen.errors import DataError, one_line

# the most pixels an input image may have (8192 x 8192): checked from the header, before decoding, far
# below PIL's own bomb limit (89M pixels), which still lets a 9000 x 9000 image be decoded whole
MAX_IMAGE_PIXELS = 2**26


__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFolderDataset",
    "ImagePatches",
    "ResizeMode",
    "SingleImageDataset",
    "load_image",
    "load_sample_image",
    "resize_image",
    "to_rgb",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
ResizeMode = Literal["crop", "stretch", "pad"]
RESIZE_MODES: tuple[str, ...] = ("crop", "stretch", "pad")
RGB = tuple[int, int, int]

# LANCZOS is the sharpest antialiased filter in PIL; with reducing_gap=3 large downscales first use a
# box reduce, which Pillow documents as indistinguishable from a full-support resample but much faster.
_FILTER = Image.Resampling.LANCZOS
_REDUCING_GAP = 3.0

# Modes that carry an alpha band (after converting to RGBA they get composited over the background).
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_INT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "I;16S", "I;32", "I;32L", "I;32B", "I;32N"}



def _int_bit_depth(img: Image.Image, arr: np.ndarray) -> int:
    """Real bit depth of an integer grayscale image: 16 for I;16*, the TIFF BitsPerSample tag when present,
    otherwise 16 if every value fits in [0, 65535] (PIL's historic mode for 16-bit PNGs is "I") else 32."""
    if img.mode.startswith("I;16"):
        return 16
    tags = getattr(img, "tag_v2", None)
    if tags is not None:
        bits = tags.get(258)  # BitsPerSample
        if isinstance(bits, tuple):
            bits = bits[0] if bits else None
        if isinstance(bits, int) and 1 <= bits <= 32:
            return bits
    if arr.size == 0 or (arr.min() >= 0 and arr.max() <= 0xFFFF):
        return 16
    return 32


def _gray_to_rgb(gray: np.ndarray) -> Image.Image:
    g = np.ascontiguousarray(gray, dtype=np.uint8)  # [H, W]
    return Image.fromarray(np.repeat(g[:, :, None], 3, axis=2), "RGB")  # [H, W, 3]


def _int_to_rgb(img: Image.Image) -> Image.Image:
    """Integer grayscale (I;16*, I, I;32*) -> RGB, scaled by the real bit depth (65535 -> 255, 32768 -> 128)."""
    arr = np.asarray(img).astype(np.int64)  # [H, W]
    bits = _int_bit_depth(img, arr)
    if bits == 32:  # signed 32-bit mode "I": negatives clip to 0
        top = 2**31 - 1
    else:
        top = 2**bits - 1
    arr = np.clip(arr, 0, top)
    return _gray_to_rgb((arr * 255 + top // 2) // top)  # round to nearest


def _float_to_rgb(img: Image.Image) -> Image.Image:
    """Float grayscale (F) -> RGB: data within [0, 1] is scaled by 255, anything else is taken as 0..255 and clipped."""
    arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)  # [H, W]
    if arr.size and arr.min() >= 0.0 and arr.max() <= 1.0:
        arr = arr * 255.0
    return _gray_to_rgb(np.clip(np.rint(arr), 0, 255))


def to_rgb(img: Image.Image, background: RGB = (0, 0, 0)) -> Image.Image:
    """Convert a PIL image of any mode to RGB; transparency is composited over `background`."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode in _INT_MODES:
        return _int_to_rgb(img)
    if mode == "F":
        return _float_to_rgb(img)
    if mode in _ALPHA_MODES or (mode in {"1", "L", "P", "RGB"} and "transparency" in img.info):
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, tuple(int(c) for c in background))
        out.paste(rgba, mask=rgba.getchannel("A"))  # alpha blend over the background
        return out
    return img.convert("RGB")  # 1, L, P, CMYK, YCbCr, HSV, RGBX, ...


def load_image(fp_or_path: Union[str, os.PathLike, IO[bytes]], name: str, background: RGB = (0, 0, 0)) -> Image.Image:
    """Decode an image file (path or binary file object) to RGB, honouring EXIF orientation.

    `name` is used in the error: DataError("cannot read image <name>: <reason>").
    """
    try:
        with Image.open(fp_or_path) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise DataError(f"image {name} has {img.width}x{img.height} pixels, more than posgen reads "
                                f"({MAX_IMAGE_PIXELS:,} pixels)")
            img.load()
            if img.getexif().get(0x0112, 1) != 1:  # EXIF Orientation
                img = ImageOps.exif_transpose(img)
            rgb = to_rgb(img, background)
            rgb.load()
            return rgb
    except DataError:
        raise
    except Exception as e:  # PIL plugins raise OSError, SyntaxError, ValueError, struct.error, ...
        raise DataError(f"cannot read image {name}: {one_line(e, with_type=True)}") from e


def _check_size(size: tuple[int, int] | int) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    h, w = (int(s) for s in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"image size must be positive, got {h}x{w}")
    return h, w


def resize_image(img: Image.Image, size: tuple[int, int], mode: ResizeMode = "crop") -> Image.Image:
    """Resize to exactly `size` = (H, W), returning RGB.

    crop: scale so the image covers the target, then center-crop; stretch: ignore aspect ratio;
    pad: scale to fit inside, center on black.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    h, w = _check_size(size)
    img = to_rgb(img)
    sw, sh = img.size
    if (sw, sh) == (w, h):
        return img
    if mode == "stretch":
        return img.resize((w, h), _FILTER, reducing_gap=_REDUCING_GAP)
    if mode == "crop":
        scale = max(w / sw, h / sh)
        cw, ch = w / scale, h / scale  # crop window in source pixels (fractional)
        left, top = (sw - cw) / 2, (sh - ch) / 2
        return img.resize((w, h), _FILTER, box=(left, top, left + cw, top + ch), reducing_gap=_REDUCING_GAP)
    scale = min(w / sw, h / sh)  # pad
    nw = min(w, max(1, round(sw * scale)))
    nh = min(h, max(1, round(sh * scale)))
    inner = img if (nw, nh) == (sw, sh) else img.resize((nw, nh), _FILTER, reducing_gap=_REDUCING_GAP)
    out = Image.new("RGB", (w, h), (0, 0, 0))
    out.paste(inner, ((w - nw) // 2, (h - nh) // 2))
    return out


def _to_tensor(img: Image.Image) -> torch.Tensor:
    arr = np.array(img, dtype=np.uint8)  # [H, W, 3]
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()  # [3, H, W]


def _is_image_name(name: str) -> bool:
    """Image extension (case-insensitive); skips macOS resource forks (`._x.png`, `__MACOSX/`)."""
    base = name.rsplit("/", 1)[-1]
    if base.startswith("._") or name.startswith("__MACOSX/") or "/__MACOSX/" in name:
        return False
    return os.path.splitext(base)[1].lower() in IMAGE_EXTENSIONS


def _check_resize(resize: str) -> str:
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    return resize


class ImageFolderDataset(Dataset):
    """Images under a directory (recursive) or inside a .zip archive, as uint8 [3, H, W] tensors.

    Files are matched by extension (case-insensitive) and sorted by their relative POSIX path.
    Zip archives are opened lazily, once per process, so DataLoader workers each get their own handle.
    """

    def __init__(
        self,
        source: str | Path,
        size: tuple[int, int] | int,
        resize: str = "crop",
        background: RGB = (0, 0, 0),
    ) -> None:
        self.source = Path(source).expanduser()
        self.size = _check_size(size)
        self.resize = _check_resize(resize)
        self.background = tuple(int(c) for c in background)
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None
        src = self.source
        if not src.exists():
            raise DataError(f"image source does not exist: {src}")
        if src.is_dir():
            self.is_zip = False
            files = []
            for dirpath, dirnames, filenames in os.walk(src, followlinks=True):
                dirnames[:] = [d for d in dirnames if d != "__MACOSX"]
                rel = Path(dirpath).relative_to(src).as_posix()
                for f in filenames:
                    name = f if rel == "." else f"{rel}/{f}"
                    if _is_image_name(name):
                        files.append(name)
        elif src.is_file() and src.suffix.lower() == ".zip":
            self.is_zip = True
            try:
                with zipfile.ZipFile(src) as zf:
                    files = [i.filename for i in zf.infolist() if not i.is_dir() and _is_image_name(i.filename)]
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
                raise DataError(f"not a valid zip archive: {src} ({one_line(e, with_type=True)})") from e
            unsafe = next((f for f in files if f.startswith(("/", "\\")) or ".." in f.replace("\\", "/").split("/")), None)
            if unsafe is not None:  # never extracted, but a traversal name says the archive was made to attack
                raise DataError(f"zip archive {src} has an unsafe member name {unsafe!r} (absolute or with '..')")
        else:
            raise DataError(f"image source is neither a directory nor a .zip archive: {src}")
        self.files: list[str] = sorted(files)
        if not self.files:
            raise DataError(f"no images found in {src} (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})")

    def __len__(self) -> int:
        return len(self.files)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_zip"], state["_zip_pid"] = None, None  # never ship an open handle to another process
        return state

    def _archive(self) -> zipfile.ZipFile:
        pid = os.getpid()
        if self._zip is None or self._zip_pid != pid:
            # After fork the inherited handle shares its file offset with the parent: open our own.
            try:
                self._zip = zipfile.ZipFile(self.source)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
                raise DataError(f"not a valid zip archive: {self.source} ({one_line(e, with_type=True)})") from e
            self._zip_pid = pid
        return self._zip

    def load(self, index: int) -> Image.Image:
        """The RGB PIL image at `index`, before resizing."""
        name = self.files[index]
        if not self.is_zip:
            return load_image(self.source / name, str(self.source / name), self.background)
        label = f"{name} in {self.source}"
        try:
            data = self._archive().read(name)
        except DataError:
            raise
        except Exception as e:  # BadZipFile (CRC), zlib.error, NotImplementedError (compression), ...
            raise DataError(f"cannot read image {label}: {one_line(e, with_type=True)}") from e
        return load_image(io.BytesIO(data), label, self.background)

    def __getitem__(self, index: int) -> torch.Tensor:
        img = resize_image(self.load(index), self.size, self.resize)  # type: ignore[arg-type]
        return _to_tensor(img)  # [3, H, W] uint8

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.source)!r}, n={len(self)}, size={self.size}, resize={self.resize!r})"


class SingleImageDataset(Dataset):
    """One image (a file, or a decoded PIL image with a `name`) as a dataset of length 1 (uint8 [3, H, W]);
    `size=None` keeps the native size.

    The image is decoded once in __init__, so a bad file fails at construction.
    """

    def __init__(
        self,
        path: str | Path | Image.Image,
        size: tuple[int, int] | int | None = None,
        resize: str = "crop",
        background: RGB = (0, 0, 0),
        name: str | None = None,
    ) -> None:
        self.size = None if size is None else _check_size(size)
        self.resize = _check_resize(resize)
        if isinstance(path, Image.Image):
            self.name, img = name or "image", to_rgb(path, tuple(int(c) for c in background))  # type: ignore[arg-type]
        else:
            file = Path(path).expanduser()
            self.name = name or str(file)
            if not file.exists():
                raise DataError(f"image file does not exist: {file}")
            if not file.is_file():
                raise DataError(f"not an image file: {file}")
            img = load_image(file, str(file), tuple(int(c) for c in background))  # type: ignore[arg-type]
        if self.size is not None:
            img = resize_image(img, self.size, self.resize)  # type: ignore[arg-type]
        self._image = _to_tensor(img)  # [3, H, W] uint8

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> torch.Tensor:
        if index not in (0, -1):
            raise IndexError(f"SingleImageDataset index out of range: {index}")
        return self._image.clone()  # [3, H, W]

    def __repr__(self) -> str:
        h, w = self._image.shape[1:]
        return f"{type(self).__name__}({self.name!r}, size=({h}, {w}))"


SAMPLE_PREFIX = "sample:"


def load_sample_image(source: str) -> Image.Image:
    """`sample:NAME`: one of the photographs bundled with scikit-learn (china.jpg, flower.jpg), offline."""
    from sklearn.datasets import load_sample_image as sklearn_sample

    name = source[len(SAMPLE_PREFIX):]
    try:
        return Image.fromarray(sklearn_sample(name)).convert("RGB")
    except Exception as e:  # sklearn raises AttributeError for unknown names
        raise DataError(f"no bundled sample image {name!r} (scikit-learn has china.jpg and flower.jpg)") from e


class ImagePatches(Dataset):
    """Every `size` patch (stride 1) of one image scaled to `height` rows: uint8 [3, h, w] items.

    Item i is the patch whose top-left corner is (i // n_x, i % n_x), so a seeded index sampler
    picks uniformly random crops reproducibly. For single-image GANs and CIPS panoramas (Sec. 4.8),
    which learn from crops of ordinary photographs.
    """

    def __init__(self, image: Image.Image, height: int, size: tuple[int, int] | int, name: str = "image") -> None:
        ph, pw = _check_size(size)
        img = to_rgb(image)
        width = max(1, round(img.width * height / img.height))
        if height < ph or width < pw:
            raise DataError(f"{name} scaled to height {height} is {height}x{width}, smaller than the "
                            f"{ph}x{pw} patches (raise data.patch_height)")
        self.name, self.size = name, (ph, pw)
        self._image = _to_tensor(img.resize((width, height), _FILTER, reducing_gap=_REDUCING_GAP))  # [3, H, W]
        self._positions = (height - ph + 1, width - pw + 1)

    def __len__(self) -> int:
        return self._positions[0] * self._positions[1]

    def __getitem__(self, index: int) -> torch.Tensor:
        if not -len(self) <= index < len(self):
            raise IndexError(f"ImagePatches index out of range: {index}")
        top, left = divmod(index % len(self), self._positions[1])
        return self._image[:, top:top + self.size[0], left:left + self.size[1]].clone()

    def __repr__(self) -> str:
        h, w = self._image.shape[1:]
        return f"{type(self).__name__}({self.name!r}, image={h}x{w}, patch={self.size[0]}x{self.size[1]}, n={len(self)})"
