"""Serving the application: in a running event loop (tests) or until a signal (the command).

The command line itself is ``rewardflow simulate`` (:mod:`rewardflow.cli.simulate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import AsyncIterator

from aiohttp import web

from rewardflow.simulator.app import build_app
from rewardflow.simulator.config import SimulatorConfig, SimulatorError

ANNOUNCEMENT = "rewardflow simulator listening on {url}"
#: In-flight requests get this long to finish when the server stops (aiohttp's default is 60 s).
SHUTDOWN_TIMEOUT_S = 5.0


def base_url(host: str, port: int) -> str:
    """The OpenAI-style base URL (ending in ``/v1``) of a server on ``host:port``."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"http://{host}:{port}/v1"


@contextlib.asynccontextmanager
async def running_simulator(
    config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve the simulator in the running event loop, yielding its base URL.

    ``port=0`` lets the OS pick a free port; the URL carries the real one. A port that cannot
    be bound raises :class:`SimulatorError`. Leaving the block stops the server, giving
    in-flight requests :data:`SHUTDOWN_TIMEOUT_S` to finish.
    """
    runner = web.AppRunner(build_app(config), shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as error:
            reason = error.strerror or str(error)
            raise SimulatorError(f"cannot listen on {host}:{port}: {reason}") from error
        yield base_url(host, runner.addresses[0][1])
    finally:
        await runner.cleanup()


def _stop_on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` once stdin reaches end of file.

    A generation job that starts the simulator holds the write end of its stdin; if that job
    is killed (even with ``kill -9``) the pipe closes and the simulator exits instead of
    lingering as an orphan.
    """

    def wait_for_eof() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_eof, daemon=True).start()


async def serve_until_signalled(
    config: SimulatorConfig, host: str, port: int, exit_on_stdin_eof: bool = False
) -> None:
    """Serve, announce the URL on stdout (one flushed line), and stop on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(signum, stop.set)
    if exit_on_stdin_eof:
        _stop_on_stdin_eof(loop, stop)
    async with running_simulator(config, host, port) as url:
        print(ANNOUNCEMENT.format(url=url), flush=True)
        await stop.wait()
