"""Secrets the server shows once (a new API key) go where the manifests say, never to output.

A sink is a file, written with mode 0600 (created beside the target and renamed over it, so it
is never half-written and never readable by others, even for an instant), or a command the
target document names, run without a shell with the secret on its standard input. A command's
output is discarded (it could echo the secret); a failure names the command and its exit
status only.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.diagnostics import ReconcilerError

COMMAND_TIMEOUT_S = 60


class SinkError(ReconcilerError):
    """A secret could not be delivered; the message never holds the secret."""


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path`, readable by its owner only, atomically (an existing file, or a
    symbolic link in its place, is replaced, never written through)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as error:
        raise SinkError(f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise SinkError(f"cannot write {path}: {error.strerror}") from None


@dataclass(frozen=True)
class FileSink:
    """A file inside one of `roots` (the directories the manifests may use)."""

    path: str  # absolute
    shown: str  # as the manifest names it
    roots: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"file {self.shown} (mode 0600)"

    # Saved plans digest what the manifests say (the name as written), not where the checkout
    # lies: a plan made in one CI job applies in another.
    __str__ = describe

    def deliver_now(self, secret: str) -> None:
        target = Path(self.path)
        parent = os.path.realpath(target.parent)
        # The directory may have become a link to elsewhere since the manifests were read.
        if self.roots and not any(
            parent == root or parent.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots
        ):
            raise SinkError(f"sink {self.shown}: its directory is outside the manifest tree")
        try:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as error:
            raise SinkError(f"sink {self.shown}: {error.strerror}") from None
        write_private(target, (secret + "\n").encode())


@dataclass(frozen=True)
class CommandSink:
    """A command named in the target document (`name`), given the secret on stdin."""

    name: str
    argv: tuple[str, ...]

    def describe(self) -> str:
        return f"command {self.name}"

    __str__ = describe

    def deliver_now(self, secret: str) -> None:
        try:
            result = subprocess.run(
                list(self.argv),
                input=(secret + "\n").encode(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
        except FileNotFoundError:
            raise SinkError(f"sink command {self.name}: {self.argv[0]} not found") from None
        except subprocess.TimeoutExpired:
            raise SinkError(
                f"sink command {self.name}: no exit within {COMMAND_TIMEOUT_S} s"
            ) from None
        except OSError as error:
            raise SinkError(f"sink command {self.name}: {error.strerror}") from None
        if result.returncode != 0:
            raise SinkError(f"sink command {self.name} exited with status {result.returncode}")


Sink = FileSink | CommandSink


async def deliver(sink: Sink, secret: str) -> None:
    """Deliver without blocking the event loop."""
    await asyncio.to_thread(sink.deliver_now, secret)


def roots_of(directories: Sequence[str]) -> tuple[str, ...]:
    return tuple(os.path.realpath(d) for d in directories)
