"""The command line every program shares: ``--help`` lists each setting, ``--version``.

Settings come from environment variables; the help names each one with its default, so
``graphinator --help`` answers what can be set without reading the code. Parsing happens
before any setting is read or any server is contacted.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from common.settings import SECRET_FILES, redact_url

DISTRIBUTION = "discogs-pipeline"


def package_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # pragma: no cover - run from a source tree, not installed
        return "unknown"


def settings_help(settings_cls: type[BaseSettings]) -> str:
    """One line per setting: its environment variable and default (secrets shown as set)."""
    rows = []
    for name, field in settings_cls.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            secret = default.get_secret_value()
            shown = redact_url(secret) if "://" in secret else "*** (secret)"
        elif default is None:
            shown = "(unset)"
        else:
            shown = str(default)
        env = name.upper()
        also = f" (or {env}_FILE)" if env in SECRET_FILES else ""
        rows.append((f"{env}{also}", shown))
    width = max(len(env) for env, _ in rows)
    lines = [f"  {env.ljust(width)}  default: {shown}" for env, shown in rows]
    return "settings (environment variables):\n" + "\n".join(lines)


def add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")


def parse_service_args(
    prog: str, description: str, settings_cls: type[BaseSettings], argv: Sequence[str] | None
) -> None:
    """A consumer takes no arguments but ``--help`` and ``--version`` (exit 0); any other
    exits 2."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=settings_help(settings_cls),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    parser.parse_args(argv)
