"""The README's workflow API example runs as written (the code block, verbatim)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from tests.servers.marketplace_stub import MarketplaceStub
from tests.servers.openai_stub import OpenAIStub
from tests.workflow_support import API_KEY

pytestmark = pytest.mark.timeout(120)
README = Path(__file__).parents[2] / "README.md"


def readme_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Workflow API", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory without .env, and none of the developer's settings."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("SWARM_", "OPENAI_")) or name == "RAY_ADDRESS":
            monkeypatch.delenv(name)
    return tmp_path


def _run_example() -> None:
    exec(compile(readme_example(), str(README), "exec"), {"__name__": "readme_example"})


def test_the_readme_example_recovers_against_an_llm_and_a_marketplace(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with OpenAIStub(expected_api_key=API_KEY) as llm, MarketplaceStub() as shop:
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
        monkeypatch.setenv("SWARM_MARKETPLACE_URL", shop.url)
        _run_example()

    lines = capsys.readouterr().out.splitlines()
    assert "failed at confirm_upload: InjectedFailureError" in lines[0]
    assert lines[-1] == "True completed"
    assert llm.paid_calls_by_schema == {"Listing": 1, "Campaign": 1}
    assert shop.writes == Counter({"wool-beanie": 1})
    assert (clean_env / "data" / "swarm.db").is_file()


def test_the_readme_example_runs_offline_with_default_settings(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run_example()
    _run_example()  # again, on the same database

    lines = capsys.readouterr().out.splitlines()
    assert lines.count("True completed") == 2
