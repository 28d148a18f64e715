"""Typed errors. Each message is one line that names the problem and the fix.

The CLI turns any ``FrugalError`` into ``error: <message>`` on stderr and exit code 2.
"""


class FrugalError(Exception):
    """Base class: bad input or a missing prerequisite the user can fix."""


class ConfigError(FrugalError, ValueError):
    """An option or config value is out of range or inconsistent."""


class DataError(FrugalError, ValueError):
    """A data file is missing, truncated, corrupt or of the wrong kind."""


class MissingAssetError(FrugalError, FileNotFoundError):
    """A bundled asset is not installed; the message names the make target that installs it."""


class CheckpointError(FrugalError, ValueError):
    """A checkpoint does not exist, is corrupt, or belongs to another architecture."""


class ToolError(FrugalError, RuntimeError):
    """An external tool (yosys, OpenSTA, ...) is missing or rejected its input."""


class UnsupportedModelError(FrugalError, ValueError):
    """A model (architecture or layer type) that this method cannot handle."""
