"""Typed errors. Each carries a one-line message and a hint naming the fix; the CLI prints
them without a traceback (unless --debug) and exits non-zero."""

from __future__ import annotations


class VitcError(Exception):
    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(VitcError):
    """A user-supplied setting is out of range or inconsistent."""


class DataError(VitcError):
    """The dataset is missing, malformed or unreadable."""


class ModelError(VitcError):
    """Unknown model name, incompatible architecture or option."""


class CheckpointError(VitcError):
    """A checkpoint is missing, unsafe, or does not fit the model."""


class OfflineError(VitcError):
    """Pretrained weights were requested but the hub cannot be reached."""


class OutputError(VitcError):
    """The output location cannot be written or holds another run."""


class AccuracyGateError(VitcError):
    """A quantized artifact lost more top-1 than --max-drop allows (it is kept, marked failed)."""

    exit_code = 3
