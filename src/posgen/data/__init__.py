"""Data sources: the embedded biased digits, image folders / zip archives, a single image,
and MNIST IDX files. `open_dataset` turns a source string into a Dataset of uint8 [3, H, W]."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from posgen.data.digits import BiasedDigits, BiasedDigitsConfig, make_biased_digits
from posgen.errors import DataError

@dataclass
class DataConfig:
    source: str = "digits"       # "digits", a folder, a .zip archive, an image file or "sample:NAME"
    resize: Literal["crop", "stretch", "pad"] = "crop"
    patch_height: int = 0        # > 0: one image scaled to this height, every training-size patch of it
    workers: int = 2             # processes decoding folder / zip images ahead of training (0: in the trainer)
    digits: BiasedDigitsConfig = field(default_factory=BiasedDigitsConfig)

    def validate(self) -> None:
        if self.source == "digits":
            self.digits.validate()
        if self.patch_height < 0:
            raise DataError(f"data.patch_height must be 0 (off) or positive, got {self.patch_height}")
        if self.workers < 0:
            raise DataError(f"data.workers must be 0 (decode in the trainer) or positive, got {self.workers}")


def open_dataset(cfg: DataConfig, size: tuple[int, int]):
    """A Dataset yielding uint8 [3, H, W] images of `size` (H, W).

    Sources: "digits" (the biased digits), a folder or .zip of images, one image file, or
    "sample:NAME" (a photograph bundled with scikit-learn). With `patch_height` a single image
    (file or sample) is scaled to that height and the items are all its `size` patches.
    """
    if cfg.source == "digits":
        if tuple(cfg.digits.canvas) != tuple(size):
            raise DataError(f"digits canvas {cfg.digits.canvas[0]}x{cfg.digits.canvas[1]} must match the "
                            f"training size {size[0]}x{size[1]} (set data.digits.canvas)")
        return BiasedDigits(cfg.digits)
    from posgen.data.images import (IMAGE_EXTENSIONS, SAMPLE_PREFIX, ImageFolderDataset, ImagePatches,
                                    SingleImageDataset, load_image, load_sample_image)

    if cfg.source.startswith(SAMPLE_PREFIX):
        image = load_sample_image(cfg.source)
    else:
        path = Path(cfg.source).expanduser()
        if not path.exists():
            raise DataError(f"data source not found: {cfg.source}")
        single = path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
        if not cfg.patch_height:
            return SingleImageDataset(path, size) if single else ImageFolderDataset(path, size, resize=cfg.resize)
        if not single:
            raise DataError(f"data.patch_height takes patches of one image; {cfg.source} is not an image file")
        image = load_image(path, str(path))
    if cfg.patch_height:
        return ImagePatches(image, cfg.patch_height, size, name=cfg.source)
    return SingleImageDataset(image, size, name=cfg.source)


__all__ = ["BiasedDigits", "BiasedDigitsConfig", "DataConfig", "DataError", "make_biased_digits", "open_dataset"]
