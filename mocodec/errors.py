"""The exception types mocodec raises for problems a user can fix.

Every message is one line that names the problem and the fix; the CLI prints it
as ``mocodec: error: <message>`` and exits with status 2, never a traceback.
"""


class MocodecError(Exception):
    """Base class: a user-facing problem with a one-line, actionable message."""


class UnknownNameError(MocodecError, KeyError):
    """A registry lookup (codec, distortion, task, ...) for a name that is not registered."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class ConfigError(MocodecError, ValueError):
    """An argument or configuration value that is out of range or inconsistent."""


class ImageReadError(MocodecError, OSError):
    """An input image that is missing, unreadable, or not an image."""


class BitstreamError(MocodecError, ValueError):
    """A compressed file that is truncated, corrupted, or of another codec/format version."""


class ForeignArithmeticError(BitstreamError):
    """A file whose entropy parameters this machine does not reproduce (another machine's float arithmetic)."""


class WeightsError(MocodecError, OSError):
    """Weights that are missing (offline) or do not fit the requested architecture."""


class OutputExistsError(MocodecError, FileExistsError):
    """An output path that already exists and would be overwritten without ``--force``."""
