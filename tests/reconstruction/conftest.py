"""Fixtures for the recovery tests: the suite's LLM and marketplace servers, and
settings for a fresh database that send every call to them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm.settings import SwarmSettings
from tests.servers.marketplace_stub import MarketplaceStub
from tests.servers.openai_stub import OpenAIStub
from tests.workflow_support import API_KEY, server_settings


@pytest.fixture
def llm() -> Iterator[OpenAIStub]:
    with OpenAIStub(expected_api_key=API_KEY) as stub:
        yield stub


@pytest.fixture
def shop() -> Iterator[MarketplaceStub]:
    with MarketplaceStub() as stub:
        yield stub


@pytest.fixture
def settings(tmp_path: Path, llm: OpenAIStub, shop: MarketplaceStub) -> SwarmSettings:
    return server_settings(tmp_path / "swarm.db", llm, shop)
