"""Data sources: the embedded biased digits, image folders / zip archives, a single image,
and MNIST IDX files. `open_dataset` turns a source string into a Dataset of uint8 [3, H, W]."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from posgen.data.digits import BiasedDigits, BiasedDigitsConfig, make_biased_digits
from posgen.data.errors import DataError

@dataclass
class DataConfig:
    source: str = "digits"       # "digits", a folder, a .zip archive or an image file
    resize: Literal["crop", "stretch", "pad"] = "crop"
    digits: BiasedDigitsConfig = field(default_factory=BiasedDigitsConfig)

    def validate(self) -> None:
        if self.source == "digits":
            self.digits.validate()


def open_dataset(cfg: DataConfig, size: tuple[int, int]):
    """A Dataset yielding uint8 [3, H, W] images of `size` (H, W)."""
    if cfg.source == "digits":
        if tuple(cfg.digits.canvas) != tuple(size):
            raise DataError(f"digits canvas {cfg.digits.canvas[0]}x{cfg.digits.canvas[1]} must match the "
                            f"training size {size[0]}x{size[1]} (set data.digits.canvas)")
        return BiasedDigits(cfg.digits)
    from posgen.data.images import IMAGE_EXTENSIONS, ImageFolderDataset, SingleImageDataset

    path = Path(cfg.source).expanduser()
    if not path.exists():
        raise DataError(f"data source not found: {cfg.source}")
    if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        return SingleImageDataset(path, size)
    return ImageFolderDataset(path, size, resize=cfg.resize)


__all__ = ["BiasedDigits", "BiasedDigitsConfig", "DataConfig", "DataError", "make_biased_digits", "open_dataset"]
