"""Crash-safe checkpoint files: write ``<name>.tmp``, fsync, then rename over the target.

A process killed while saving (SIGKILL, OOM killer, pre-emption) must leave the previous
``last.ckpt`` loadable. Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction but
never fsyncs, so after a power loss the renamed file can still be empty. ``AtomicCheckpointIO``
serialises the checkpoint in memory, writes it to a temporary file in the *same* folder (a rename
is atomic only within one filesystem), flushes and fsyncs it, ``os.replace``-s it over the target
and fsyncs the folder so the rename itself is durable. A reader therefore sees the old file or the
new one, never half of one. Remote paths (``s3://``, ...) keep Lightning's own writer.

``lit-loraplus`` uses it by default (``LoraPlusCLI`` sets ``trainer.plugins``); from Python pass
``L.Trainer(plugins=[AtomicCheckpointIO()])``.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import IO, Any

import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.plugins import TorchCheckpointIO
from typing_extensions import override

TMP_SUFFIX = ".tmp"


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic and durable (temp file + fsync + ``os.replace``).

    Example:
        >>> trainer = L.Trainer(plugins=[AtomicCheckpointIO()])  # doctest: +SKIP
    """

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        """Save ``checkpoint`` to ``path`` atomically (local paths) or as Lightning does (remote ones).

        Args:
            checkpoint: The checkpoint dict (``torch.save``-able).
            path: Target file.
            storage_options: Not supported, as in ``TorchCheckpointIO``.

        Raises:
            TypeError: If ``storage_options`` is given.
        """
        if storage_options is not None or not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # serialise first: a failing save never touches the disk
        tmp = path + TMP_SUFFIX
        try:
            with open(tmp, "wb") as f:
                self._write(f, buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:  # a full disk, a quota, a vanished mount: the previous file is untouched
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise OSError(
                err.errno,
                f"Could not write the checkpoint {path} ({err.strerror or err}); the previous checkpoint there is "
                f"intact. Free space in {folder} or point the checkpoint callback's `dirpath` at another disk.",
            ) from err
        os.replace(tmp, path)
        _fsync_folder(folder)

    def _write(self, f: IO[bytes], data: memoryview) -> None:
        """Write the serialised checkpoint to the open temporary file (a seam for fault-injection tests)."""
        f.write(data)


def _fsync_folder(folder: str) -> None:
    """Make a rename inside ``folder`` durable (no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
