"""An editor opened on a project the CLI (or an earlier session) already measured."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile

import pytest_lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import FIXTURES, run_cli
from tests.lsp.conftest import initialize, lens_titles, open_file

CACHE = tempfile.mkdtemp(prefix="paramlens-lsp-cache-")
SERVER = ClientServerConfig(
    server_command=[sys.executable, "-m", "paramlens", "lsp"],
    server_env={**os.environ, "PARAMLENS_CACHE_DIR": CACHE},
)
RESNET = FIXTURES / "zoo/models/resnet.py"


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await initialize(lsp_client, FIXTURES / "zoo")  # the folder the CLI takes as the root
    yield
    await lsp_client.shutdown_session()


async def test_a_file_the_cli_measured_shows_every_lens_at_once(client: LanguageClient) -> None:
    # the same settings as the editor's (initialize() sets a 3 s timeout): the same results
    done = await asyncio.to_thread(
        run_cli, "annotate", str(RESNET), "--timeout", "3", env={"PARAMLENS_CACHE_DIR": CACHE}
    )
    assert done.returncode == 0, done.stderr
    doc = open_file(client, RESNET)
    # A first analysis is built in two parts (classes, then factories) unless the whole
    # result is cached: the very first lenses shown must already include the factories'.
    shown = await lens_titles(client, doc)
    assert shown[55].startswith("ResNet18 → ResNet · 676,682 params")
    assert shown[34].startswith("ResNet · 676,682 params")
