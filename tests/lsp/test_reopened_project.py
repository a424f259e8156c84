"""An editor reopened on a project analysed before starts its worker at once."""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import tempfile

import pytest_lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import initialize

CACHE = tempfile.mkdtemp(prefix="paramlens-reopened-")
PYTHON = shlex.quote(sys.executable)
# the CLI measures the project first (the persisted scan says it was analysed), then the
# editor starts on it; the CLI's output must not reach the editor's stdio
SERVER = ClientServerConfig(
    server_command=[
        "sh",
        "-c",
        f"{PYTHON} -m paramlens annotate {shlex.quote(str(FIXTURES / 'recipe'))} "
        f">/dev/null 2>&1; exec {PYTHON} -m paramlens lsp",
    ],
    server_env={**os.environ, "PARAMLENS_CACHE_DIR": CACHE},
)


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await initialize(lsp_client, FIXTURES)
    yield
    await lsp_client.shutdown_session()


async def test_the_worker_starts_before_any_file_is_opened(client: LanguageClient) -> None:
    async def worker_ready() -> None:
        while not any(m.message.startswith("worker ready") for m in client.log_messages):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(worker_ready(), 60)  # no didOpen was sent
