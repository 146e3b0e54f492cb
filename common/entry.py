"""What a consumer's process does around its service: arguments, settings, logging, signals."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import TypeVar

import structlog

from common.cli import package_version, parse_service_args
from common.decoding import tune_gc
from common.logging import configure_logging
from common.settings import CommonSettings, SettingsError, load

log = structlog.get_logger(__name__)

_SWITCH_INTERVAL_S = 0.0005

S = TypeVar("S", bound=CommonSettings)


def install_signal_handlers(stop: asyncio.Event) -> None:
    """First SIGTERM/SIGINT sets ``stop``; a second one exits the process at once."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second signal: exiting now", signal=signal.Signals(signum).name)
            os._exit(128 + signum)
        log.info("shutdown requested", signal=signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


def run_main(
    name: str,
    settings_cls: type[S],
    serve: Callable[[S, asyncio.Event], Awaitable[int]],
    *,
    description: str,
    argv: Sequence[str] | None = None,
) -> int:
    """Entry point shared by the services: arguments (``--help``, ``--version``), settings,
    logging, signals, then ``serve``."""
    parse_service_args(name, description, settings_cls, argv)
    try:
        settings = load(settings_cls)
    except SettingsError as e:
        sys.stderr.write(f"{name}: {e}\n")
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if settings.decode_workers == 0:
        # Batch messages are then decoded on a thread of this process: a short switch
        # interval hands the interpreter back to the event loop often, so database round
        # trips are not held up behind a decode. With workers the loop has it to itself.
        sys.setswitchinterval(_SWITCH_INTERVAL_S)
    tune_gc()
    if warning := settings.prefetch_warning():
        log.warning("prefetch below batch size", detail=warning)
    log.info(
        "starting",
        service=name,
        version=package_version(),
        prefetch=settings.prefetch(),
        **asdict(settings.batch()),
    )

    async def _run() -> int:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        return await serve(settings, stop)

    return asyncio.run(_run())
