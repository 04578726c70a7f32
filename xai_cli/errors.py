"""Errors a user can act on, and the exit codes of the contract.

Every failure the user can cause or fix is an :class:`XaiError` carrying what went wrong and a hint
on what to do (pip's ``DiagnosticPipError`` pattern); the CLI prints both and exits with the code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes promised by the contract, in one place (httpie's ``ExitStatus``)."""

    OK = 0
    AUDIT_FAILED = 1
    BAD_INPUT = 2
    UNSAFE_MODEL = 3
    MODEL_FAILED = 4
    INTERRUPTED = 130


class XaiError(Exception):
    """A failure with a message, a hint on what to do next, and the exit code to end with."""

    exit_code: ExitCode = ExitCode.BAD_INPUT

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class BadInput(XaiError):
    """The user's files or options cannot be used as given (exit 2)."""

    exit_code = ExitCode.BAD_INPUT


class UnsafeModel(XaiError):
    """The safety scan refused the model file (exit 3)."""

    exit_code = ExitCode.UNSAFE_MODEL

    def __init__(self, message: str, hint: str | None = None, refused: list[str] | None = None):
        super().__init__(message, hint)
        self.refused = list(refused or [])


class ModelFailed(XaiError):
    """The model itself raised while it was being called (exit 4)."""

    exit_code = ExitCode.MODEL_FAILED
