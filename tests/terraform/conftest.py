from __future__ import annotations

import pytest

from tests.terraform.stack import TF_FILES, Stack


@pytest.fixture(scope="session")
def stack() -> Stack:
    return Stack.parse(TF_FILES)
