"""What the figure apps (`posgen study`, `posgen cips`) share: an output folder, models loaded once
by name, and a JSON record of every part's numbers, rewritten after each part so a stopped run
keeps what it measured."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from posgen.metrics.evaluate import to_json
from posgen.sampling import load


class FigureRun:
    def __init__(self, out: str | Path, settings) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self._loaded: dict[str, tuple] = {}

    def checkpoint(self, name: str) -> str:
        """Where model `name` is loaded from (a shipped name, a file or a run directory)."""
        return name

    def model(self, name: str):
        """(G, config, state) of model `name`, loaded on first use."""
        if name not in self._loaded:
            self._loaded[name] = load(self.checkpoint(name))
        return self._loaded[name]

    def record_parts(self, filename: str, parts: list[str], measure: Callable[[str], dict]) -> dict:
        """measure(part) for each part, merged into OUT/filename after each one."""
        path = self.out / filename
        record: dict = {}
        on_disk = json.loads(path.read_text()) if path.is_file() else {}
        for part in parts:
            record[part] = measure(part)
            # merged into the file as it is now: another run into the same folder may have written meanwhile
            on_disk = json.loads(path.read_text()) if path.is_file() else {}
            path.write_text(to_json({**on_disk, **record}) + "\n")
        return {**on_disk, **record}
