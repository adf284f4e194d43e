"""The ``fusionrec`` command line: ``fusionrec <command> [--conf FILE] [--set k=v] ...``.

Each command lives in ``fusionrec.commands.<name>`` and defines ``HELP``,
``add_arguments(parser)`` and ``run(cfg, args, report) -> int``.

Exit codes: 0 success; 2 a :class:`fusionrec.errors.UserError` (bad input, settings or a
stage not run yet), printed as one line; 1 any other exception, a bug, logged with its
traceback; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from types import ModuleType

from fusionrec.config import load_config
from fusionrec.errors import UserError
from fusionrec.runlog import RunReport, setup_logging

__all__ = ["COMMANDS", "DEFAULT_CONF", "main"]

log = logging.getLogger("fusionrec")

#: Commands in the order ``--help`` lists them.
COMMANDS = ["doctor", "model", "maintain", "generate", "ingest", "embed", "train", "recommend", "evaluate", "register", "promote", "pipeline", "stream"]

DEFAULT_CONF = "conf/local.yaml"


def _command(name: str) -> ModuleType:
    return importlib.import_module(f"fusionrec.commands.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--conf", default=None, metavar="FILE",
                        help=f"YAML configuration (default: {DEFAULT_CONF} if present, else built-in defaults)")
    common.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set spark.driver_memory=8g (repeatable)")
    common.add_argument("--report", default=None, metavar="FILE", help="write the run report as JSON here")
    noise = common.add_mutually_exclusive_group()
    noise.add_argument("--quiet", "-q", action="store_true", help="warnings and errors only")
    noise.add_argument("--verbose", "-v", action="store_true", help="debug logging")

    parser = argparse.ArgumentParser(prog="fusionrec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = _command(name)
        p = sub.add_parser(name, parents=[common], help=module.HELP, description=module.HELP)
        module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(-1 if args.quiet else 1 if args.verbose else 0)
    report = RunReport(args.command)
    code = 1
    try:
        conf = args.conf or (DEFAULT_CONF if Path(DEFAULT_CONF).is_file() else None)
        overrides = (["spark.show_progress=false"] if args.quiet else []) + args.overrides
        cfg = load_config(conf, overrides)
        code = _command(args.command).run(cfg, args, report)
        report.status = "ok" if code == 0 else "failed"
    except UserError as exc:
        # Bad input, settings or order of stages: one clear line, no stack trace.
        report.status, report.error = "failed", _one_line(exc)
        print(f"fusionrec {args.command}: error: {report.error}", file=sys.stderr)
        log.debug("traceback", exc_info=True)
        code = 2
    except KeyboardInterrupt:
        report.status, report.error = "interrupted", "KeyboardInterrupt"
        code = 130
    except Exception as exc:
        # Anything else is a bug: keep the traceback.
        report.status, report.error = "failed", _one_line(exc)
        log.exception("fusionrec %s failed", args.command)
        code = 1
    finally:
        if args.report:
            report.write(args.report)
    return code


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
