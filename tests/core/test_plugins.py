"""The plug-in seam: registered names resolve, unknown names are a one-line ConfigError."""

import re

import pytest

from frugalnn.core import plugins
from frugalnn.errors import ConfigError


def test_register_and_lookup():
    plugins.register("test_kind", "double")(lambda x: 2 * x)
    assert plugins.lookup("test_kind", "double")(21) == 42
    assert plugins.names("test_kind") == ["double"]
    with pytest.raises(
        ConfigError, match=re.escape("no test_kind named 'os.system' is registered; known: double")
    ):
        plugins.lookup("test_kind", "os.system")
