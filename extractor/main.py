"""The ``extractor`` command: ``extractor publish PATH...`` and ``extractor download``.

Exit codes: 0 done, 1 a dump, broker or download error (one line on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import aio_pika
import structlog

from common.amqp import CONNECT_ERRORS
from common.cli import add_version, settings_help
from common.decoding import tune_gc
from common.logging import configure_logging
from common.records import DataType
from common.settings import SettingsError, redact_url
from common.waiting import wait_for_server
from extractor.broker import PublishFailed
from extractor.download import DownloadOptions, download_dump
from extractor.dumpindex import DEFAULT_BASE_URL, parse_month
from extractor.fetch import DownloadError
from extractor.publish import PublishOptions, UsageError, collect_dumps, publish_dumps
from extractor.settings import ExtractorSettings, load_settings
from extractor.workers import WorkerDied
from extractor.xmlparse import DumpError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
log = structlog.get_logger("extractor")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from e
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _month(text: str) -> str:
    try:
        parse_month(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extractor",
        description="Streams the Discogs XML dumps onto RabbitMQ.",
        epilog=settings_help(ExtractorSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    pub = commands.add_parser("publish", help="publish dump files to the exchanges")
    pub.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="dump files or a folder")
    mode = pub.add_mutually_exclusive_group()
    mode.add_argument("--batch-size", type=_positive, default=500, help="records per message")
    mode.add_argument("--single", action="store_true", help="one record per message")
    pub.add_argument(
        "--max-message-bytes",
        type=_positive,
        help="a batch message closes at this size (default: EXTRACTOR_MAX_MESSAGE_BYTES, 8 MiB)",
    )
    pub.add_argument(
        "--workers",
        type=_positive,
        help="processes parsing the records (default: EXTRACTOR_WORKERS, or one per core)",
    )
    pub.add_argument(
        "--max-in-flight", type=_positive, default=512, help="unconfirmed messages at most"
    )
    pub.add_argument(
        "--confirm-timeout", type=float, default=120.0, help="seconds to wait for a confirm"
    )
    pub.add_argument(
        "--state-dir",
        type=Path,
        help="folder of the manifests: a delta when it holds an older version's "
        "(default: EXTRACTOR_STATE_DIR; unset: always in full, no manifest kept)",
    )
    pub.add_argument(
        "--full", action="store_true", help="send every record even when a delta is possible"
    )
    dl = commands.add_parser("download", help="download a monthly dump, resumable and verified")
    dl.add_argument("--month", type=_month, help="YYYY-MM (default: the newest dump)")
    dl.add_argument("--dest", type=Path, required=True, help="folder to download into")
    dl.add_argument(
        "--base-url", default=DEFAULT_BASE_URL, help="dump folder URL; {year} is filled in"
    )
    dl.add_argument(
        "--types", nargs="+", choices=[t.value for t in DataType], help="default: all four"
    )
    return parser


def _publish(args: argparse.Namespace, settings: ExtractorSettings) -> None:
    dumps = collect_dumps(args.paths)
    max_bytes = args.max_message_bytes or settings.extractor_max_message_bytes
    if max_bytes > settings.amqp_max_message_bytes:
        raise UsageError(
            f"--max-message-bytes {max_bytes} is above AMQP_MAX_MESSAGE_BYTES "
            f"({settings.amqp_max_message_bytes}), the largest message the consumers accept"
        )
    options = PublishOptions(
        batch_size=args.batch_size,
        single=args.single,
        max_message_bytes=max_bytes,
        message_limit=settings.amqp_max_message_bytes,
        workers=args.workers or settings.workers(),
        max_in_flight=args.max_in_flight,
        confirm_timeout=args.confirm_timeout,
        state_dir=args.state_dir or settings.extractor_state_dir,
        full=args.full,
    )
    urls = settings.amqp_urls()
    url = ",".join(urls)  # every node: the publisher fails over between them
    tune_gc()
    prefix = settings.discogs_exchange_prefix
    log.info("broker", url=redact_url(url), prefix=prefix)

    async def run() -> None:
        if not await _broker_ready(urls):
            raise KeyboardInterrupt
        await publish_dumps(dumps, url=url, prefix=prefix, options=options)

    asyncio.run(run())


async def _broker_ready(urls: Sequence[str]) -> bool:
    """Wait until a node of the broker accepts a connection; False if SIGTERM/SIGINT came
    first."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)

    async def attempt() -> bool:
        errors = []
        for url in urls:
            try:
                connection = await aio_pika.connect(url, timeout=10)
            except CONNECT_ERRORS as e:
                errors.append(f"{redact_url(url)}: {e}")
                continue
            await connection.close()
            return True
        raise ConnectionError(f"cannot connect to RabbitMQ at {'; '.join(errors)}")

    try:
        return bool(await wait_for_server("rabbitmq", attempt, errors=CONNECT_ERRORS, stop=stop))
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def _download(args: argparse.Namespace) -> None:
    types = [DataType(t) for t in args.types] if args.types else list(DataType)
    download_dump(
        DownloadOptions(dest=args.dest, month=args.month, base_url=args.base_url, types=types)
    )


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"extractor: error: {message}\n")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as e:
        return _fail(str(e), EXIT_USAGE)
    # Logs go to stderr (stdout is left to what a command prints); configured anew on
    # every call, since main() may run more than once in a process.
    configure_logging(settings.log_level, settings.log_format, stream="stderr", cache=False)
    try:
        if args.command == "publish":
            _publish(args, settings)
        else:
            _download(args)
    except UsageError as e:
        return _fail(str(e), EXIT_USAGE)
    except (DumpError, WorkerDied, PublishFailed, DownloadError, OSError) as e:
        return _fail(str(e), EXIT_ERROR)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
