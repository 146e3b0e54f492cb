"""The extractor's state folder: held by one run at a time, rid of what a killed run left.

It holds the manifests (:mod:`extractor.manifest`) and a ``lock`` file that a run holds
(``flock``) while it publishes, so that two runs never write the same manifests.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from extractor.manifest import ManifestError


class StateBusy(ManifestError):
    """Another extractor is publishing with the same state folder."""


@contextlib.contextmanager
def state_folder(state_dir: Path | None) -> Iterator[None]:
    """The state folder, created if need be, held by this run alone (a lock on
    ``state_dir/lock``), rid of the temporary files a killed run left behind."""
    if state_dir is None:
        yield
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise StateBusy(
                f"{state_dir}: another extractor is publishing with this state folder"
            ) from e
        for path in state_dir.glob(".*.manifest.*"):
            path.unlink(missing_ok=True)
        yield
    finally:
        os.close(fd)  # releases the lock
