from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis

from tests.conftest import Services
from tests.integration.helpers import Api

pytestmark = pytest.mark.integration


@pytest.fixture
async def http(
    services: Services, fresh_redis: redis.Redis
) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def api(http: aiohttp.ClientSession, services: Services) -> Api:
    return Api(http, services.gateway_url)
