"""The exceptions the package raises; the native module builds them with their paths."""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple


class Problem(NamedTuple):
    """One thing wrong with a config: where (``services.slack.url``) and what."""

    path: Optional[str]
    message: str

    def __str__(self) -> str:
        return self.message


class LookoutError(Exception):
    """Base class of the package's errors.

    ``path`` says where the problem is (a payload's JSON path such as
    ``attributes.created_by.first_name``, or a config path such as
    ``services.slack.url``); None when the whole input is unreadable.
    """

    def __init__(
        self,
        message: str,
        path: Optional[str] = None,
        problems: Sequence[Tuple[Optional[str], str]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.problems: List[Problem] = [Problem(p, m) for p, m in problems]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, path={self.path!r})"


class PayloadError(LookoutError, ValueError):
    """The payload is not JSON, or a field is missing or has the wrong shape.

    The message is the CLI's (``attributes.title: missing``); ``path`` is the field.
    """


class ConfigError(LookoutError, ValueError):
    """The config cannot be read or is invalid.

    Every invalid option is reported at once: ``problems`` lists them (each with its
    ``path`` and ``message``), the message holds them all, one a line, and ``path`` is
    the first one's. Secret option values never appear in it.
    """
