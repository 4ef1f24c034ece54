"""Fixtures for the content writer tests: an OpenAI stub per test, a writer configured
for it, and a product with everything a feed can carry (HTML body, options, facts)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from pydantic import SecretStr

from actors.models import Product, Variant
from swarm.llm_openai import OpenAIWriter, OpenAIWriterConfig
from tests.servers.openai_stub import OpenAIStub


@pytest.fixture
def api_key() -> str:
    """The key the stub requires; no error message may ever contain it."""
    return "sk-test-llm-5b1e9d-never-print-me"


@pytest.fixture
def openai_stub(api_key: str) -> Iterator[OpenAIStub]:
    with OpenAIStub(expected_api_key=api_key) as stub:
        yield stub


@pytest.fixture
def writer_config(openai_stub: OpenAIStub, api_key: str) -> OpenAIWriterConfig:
    """No SDK retries, so each failure test sees exactly the status it scripted."""
    return OpenAIWriterConfig(
        model="gpt-4o-mini",
        base_url=openai_stub.base_url,
        api_key=SecretStr(api_key),
        timeout_s=5.0,
        max_retries=0,
    )


@pytest.fixture
def openai_writer(writer_config: OpenAIWriterConfig) -> OpenAIWriter:
    return OpenAIWriter(writer_config)


@pytest.fixture
def product() -> Product:
    return Product(
        handle="linen-shirt",
        title="Linen Camp Shirt",
        description=(
            "<p>A <strong>breathable</strong> linen shirt for hot days &amp; warm nights.</p>"
            "<ul><li>Relaxed fit</li><li>Coconut buttons</li></ul>"
            "<script>alert('x')</script>"
        ),
        vendor="Acme Outfitters",
        product_category="Apparel & Accessories > Clothing > Shirts & Tops",
        product_type="Shirts",
        tags=("summer", "linen", "Menswear"),
        option_names=("Size", "Color"),
        variants=(
            Variant(
                sku="LCS-M-SAND",
                price=Decimal("59.90"),
                barcode="4006381333931",
                options={"Size": "M", "Color": "Sand"},
            ),
            Variant(
                sku="LCS-L-SAGE",
                price=Decimal("59.90"),
                barcode="4006381333948",
                options={"Size": "L", "Color": "Sage"},
            ),
        ),
    )
