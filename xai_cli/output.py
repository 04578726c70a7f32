"""Atomic file writes: a temporary name in the same folder, then a rename.

An interrupted or failed run must never leave a half-written file where a good one was, so every
output goes through :func:`atomic_path`: readers see the old file or the new one, nothing between.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xai_cli import interrupts


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        interrupts.check()  # a Ctrl-C swallowed by a library must still keep the old file
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike, document: Any) -> None:
    """Write ``document`` as indented JSON (no NaN: it is not JSON) to ``path`` atomically."""
    write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


def save_figure(figure: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> None:
    """Save a matplotlib Figure as PNG to ``path`` atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", **savefig_kwargs)


@contextlib.contextmanager
def replaced_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield ``path`` emptied; on success its old files are gone, on failure they are back as they were.

    A run's plots are many files: renaming each atomically would still leave an interrupted run's
    new plots beside the old run's, and a run with fewer rows would leave the old run's extra
    plots behind. So the old folder is set aside by one rename, and removed or restored at the end.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    aside = None
    if final.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.previous.", dir=final.parent))
        os.replace(final, aside / final.name)
    final.mkdir()
    try:
        yield final
        interrupts.check()
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        if aside is not None:
            os.replace(aside / final.name, final)
            shutil.rmtree(aside, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
