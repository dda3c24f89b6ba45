"""A run's folder: one place that names every file a run owns, and the only writer into it.

``runs/<name>/`` holds everything needed to resume, inspect and reproduce a run::

    .scaler-run.json   the manifest: every file scaler wrote here (what --fresh may delete)
    config.json        the fully resolved configuration (baseline, budget, space, recipe, seeds, data)
    study.db           the Optuna storage (SQLite) unless --storage named another
    trials.csv         one row per grid point: coefficients, multipliers, cost, accuracy mean/std, P(best)
    curves.csv         accuracy against MACs at phi = 0, 1, 2: the chosen point and the best single dimension
    coefficients.json  the chosen (alpha, beta, gamma) with its evidence (margin, P(best), verdict)
    family.json/.csv   the scaled family (phi = 0..N)
    compare.csv/.json  `scaler compare`: one row per strategy and budget, and its settings
    best.json, nas.json  `scaler nas`: the winning stage list (a baseline), and the search's answer
    report.html/.md    the report; its images under plots/
    ray/               the Ray backend's files

A folder is a run folder when it holds the manifest. scaler writes into a folder that is empty,
new, a run folder, or one from an older scaler (its config.json names a ``scaler_version``; it is
adopted); it refuses one that holds files of those names it did not write. Writes are atomic and
never follow a symlink out of the folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scaler import __version__, files
from scaler.errors import UsageError

STUDY_NAME = "search"
MANIFEST = ".scaler-run.json"
# Every name a run may write at the top of its folder.
KNOWN = ("config.json", "study.db", "trials.csv", "curves.csv", "coefficients.json", "family.json", "family.csv",
         "compare.csv", "compare.json", "report.html", "report.md", "plots", "ray", "best.json", "nas.json")


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @classmethod
    def for_name(cls, name: str, root: str | Path = "runs") -> RunFolder:
        return cls(Path(root) / name)

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    def lock(self, who: str = "scaler search") -> int:
        """Hold the folder's lock (a file descriptor; closing it releases) so that one ``who`` at a time works in it."""
        try:  # O_NOFOLLOW: a planted symlink must not make scaler create or truncate a file elsewhere
            fd = os.open(self.path / ".lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise UsageError(f"cannot lock {str(self.path)!r}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError(f"another {who} is working in {str(self.path)!r}; wait for it or use another --out") from None
        return fd

    @property
    def storage_file(self) -> Path:
        return self.path / "study.db"

    @property
    def storage_url(self) -> str:
        return f"sqlite:///{self.storage_file.resolve()}"

    def study_name(self) -> str:
        """The name of the run's study (config.json's ``study``; ``search`` before studies were named)."""
        try:
            return json.loads(self.config.read_text()).get("study") or STUDY_NAME
        except (OSError, json.JSONDecodeError, AttributeError):
            return STUDY_NAME

    @property
    def trials(self) -> Path:
        return self.path / "trials.csv"

    @property
    def coefficients(self) -> Path:
        return self.path / "coefficients.json"

    @property
    def curves(self) -> Path:
        return self.path / "curves.csv"

    @property
    def family_json(self) -> Path:
        return self.path / "family.json"

    @property
    def family_csv(self) -> Path:
        return self.path / "family.csv"

    @property
    def compare(self) -> Path:
        return self.path / "compare.csv"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    # --- ownership ----------------------------------------------------------------------------

    def is_run_folder(self) -> bool:
        return self.manifest.is_file() and not self.manifest.is_symlink()

    def owned(self) -> list[str]:
        """The files (relative paths) scaler wrote here, from the manifest."""
        if not self.is_run_folder():
            return []
        try:
            listed = json.loads(self.manifest.read_text()).get("files", [])
        except (json.JSONDecodeError, OSError, AttributeError):
            raise UsageError(f"{self.manifest} is damaged; the run folder cannot be trusted") from None
        return [str(p) for p in listed if isinstance(p, str)]

    def create(self) -> RunFolder:
        """Make (or take over) the folder as a run folder; refuse one whose files scaler did not write."""
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"{str(self.path)!r} is a file, not a folder; choose another --out")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if self.is_run_folder():
                return self
            present = [name for name in KNOWN if (self.path / name).exists() or (self.path / name).is_symlink()]
            if present and not self._older_run():
                raise UsageError(f"{str(self.path)!r} is not a scaler run folder and holds {', '.join(present)}; "
                                 "choose another folder")
            self._write_manifest(present)  # an older scaler's run is adopted with the files it has
        except OSError as exc:  # read-only, a file where a folder should be, no space
            raise UsageError(f"cannot write the run folder {str(self.path)!r}: {exc.strerror or exc}") from None
        return self

    def _older_run(self) -> bool:
        try:
            return "scaler_version" in json.loads(self.config.read_text())
        except (OSError, json.JSONDecodeError, TypeError):
            return False

    def _write_manifest(self, names: list[str]) -> None:
        files.write_json(self.manifest, {"scaler": __version__, "files": sorted(set(names))})

    def record(self, target: Path) -> Path:
        """Add ``target`` (inside the folder) to the manifest; return it."""
        rel = self._relative(target)
        owned = self.owned()
        if rel not in owned:
            self._write_manifest([*owned, rel])
        return target

    def _relative(self, target: Path) -> str:
        try:
            rel = Path(os.path.abspath(target)).relative_to(os.path.abspath(self.path))
        except ValueError:
            raise UsageError(f"{target} is outside the run folder {self.path}") from None
        for part in [*reversed(rel.parents[:-1]), rel]:  # no step of the way may be a link out
            if (self.path / part).is_symlink():
                raise UsageError(f"{self.path / part} is a symbolic link; scaler writes only real files in its run folder")
        return rel.as_posix()

    def clear(self) -> None:
        """Delete the files this run wrote, as the manifest lists them, and nothing else."""
        if not self.is_run_folder():
            raise UsageError(f"{str(self.path)!r} is not a scaler run folder (no {MANIFEST}); --fresh deletes nothing there")
        for rel in self.owned():
            target = self.path / rel
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)  # rmtree never follows links inside
            else:
                target.unlink(missing_ok=True)
        self._write_manifest([])

    # --- writing ------------------------------------------------------------------------------

    def write_json(self, target: Path, obj) -> Path:
        """Standard JSON (NaN stored as null), atomically; the file joins the manifest."""
        self.record(target)
        return files.write_json(target, obj)

    def write_csv(self, target: Path, frame: pd.DataFrame) -> Path:
        self.record(target)
        return files.write_csv(frame, target)

    def write_text(self, target: Path, text: str) -> Path:
        self.record(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        return files.write_text(target, text)

    # --- reading ------------------------------------------------------------------------------

    def read_json(self, target: Path) -> dict:
        self.require(target)
        try:
            return json.loads(target.read_text())
        except json.JSONDecodeError as exc:
            raise UsageError(f"{target} is not valid JSON ({exc}); the run folder is damaged") from None

    def read_trials(self) -> pd.DataFrame:
        self.require(self.trials)
        return pd.read_csv(self.trials)

    def require_folder(self) -> None:
        """A UsageError unless the run folder is there, saying whether it is missing or a file."""
        if not self.path.is_dir():
            raise UsageError(f"run folder {str(self.path)!r} " + ("is a file, not a folder" if self.path.exists() else "does not exist"))

    def require(self, target: Path) -> None:
        self.require_folder()
        if not target.is_file():
            raise UsageError(f"run folder {str(self.path)!r} has no {target.name}; is the run complete?")
