"""The ``fusionrec`` command line: ``fusionrec <command> [--conf FILE] [--set k=v] ...``.

Each command lives in ``fusionrec.commands.<name>`` and defines ``HELP``,
``add_arguments(parser)`` and ``run(cfg, args, report) -> int``. Only the module of the
command being run is imported (the command list of ``--help`` reads each ``HELP`` from
the module's source), so ``fusionrec --help`` and ``--version`` start no Spark, MLflow or
pandas import.

Exit codes: 0 success; 2 a :class:`fusionrec.errors.UserError` (bad input, settings or a
stage not run yet), printed as one line; 1 any other exception, a bug, logged with its
traceback; 130 interrupted.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterable

import fusionrec
from fusionrec.config import load_config
from fusionrec.errors import UserError
from fusionrec.runlog import RunReport, setup_logging

__all__ = ["COMMANDS", "DEFAULT_CONF", "DESCRIPTION", "build_parser", "command_help", "main"]

log = logging.getLogger("fusionrec")

#: Commands in the order ``--help`` lists them.
COMMANDS = ["doctor", "model", "maintain", "generate", "ingest", "embed", "train", "recommend", "evaluate", "register", "promote", "pipeline", "stream"]

DEFAULT_CONF = "conf/local.yaml"


DESCRIPTION = """fusionrec: ingest raw logs into Delta Lake, embed item and review texts with
Spark NLP, fit ALS fused with text features, and register the recommender in MLflow."""

EPILOG = """Run 'fusionrec COMMAND --help' for the options of a command.
Settings: --conf FILE (YAML), then FUSIONREC_<SECTION>__<KEY> variables, then --set KEY=VALUE.
Exit codes: 0 done; 2 a bad setting or input, printed as one line; 1 a bug (logged with its
traceback); 130 interrupted."""


def _command(name: str) -> ModuleType:
    return importlib.import_module(f"fusionrec.commands.{name.replace('-', '_')}")


def command_help(name: str) -> str:
    """The ``HELP`` of command ``name``, read from its module's source without importing it
    (a command module imports Spark or MLflow); imported only if the source is unavailable."""
    module = f"fusionrec.commands.{name.replace('-', '_')}"
    spec = importlib.util.find_spec(module)
    source = spec.loader.get_source(module) if spec is not None and spec.loader is not None else None
    for node in ast.parse(source or "").body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "HELP" for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                break
    return _command(name).HELP


def _plain(text: str) -> str:
    """Help text without the reStructuredText literal markup of docstrings."""
    return text.replace("``", "")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Plain text; every option with a value shows its default unless its help already does."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = _plain(action.help or "")
        shown = action.default not in (None, False, [], argparse.SUPPRESS) and action.option_strings
        if shown and "default" not in text and action.nargs != 0:
            text += " (default: %(default)s)"
        return text


def build_parser(commands: Iterable[str] = COMMANDS) -> argparse.ArgumentParser:
    """The argument parser; the options of ``commands`` are added (importing their modules),
    the other commands are listed with their help only."""
    with_options = set(commands)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--conf", default=None, metavar="FILE",
                        help=f"YAML configuration (default: {DEFAULT_CONF} if present, else built-in defaults)")
    common.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set spark.driver_memory=8g (repeatable)")
    common.add_argument("--report", default=None, metavar="FILE", help="write the run report as JSON here")
    noise = common.add_mutually_exclusive_group()
    noise.add_argument("--quiet", "-q", action="store_true", help="warnings and errors only")
    noise.add_argument("--verbose", "-v", action="store_true", help="debug logging")

    parser = argparse.ArgumentParser(prog="fusionrec", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {fusionrec.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        text = _plain(command_help(name))
        p = sub.add_parser(name, parents=[common], help=text, description=text, formatter_class=_HelpFormatter)
        if name in with_options:
            _command(name).add_arguments(p)
    return parser


def _chosen_command(argv: list[str]) -> list[str]:
    """The command named in ``argv`` (the first word that is not an option), if it is one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return [word] if word in COMMANDS else []


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_chosen_command(argv)).parse_args(argv)
    setup_logging(-1 if args.quiet else 1 if args.verbose else 0)
    report = RunReport(args.command)
    code = 1
    try:
        conf = args.conf or (DEFAULT_CONF if Path(DEFAULT_CONF).is_file() else None)
        # Spark's progress bar redraws with carriage returns: only on a terminal or asked for.
        bar = args.verbose or (sys.stderr.isatty() and not args.quiet)
        overrides = ([] if bar else ["spark.show_progress=false"]) + args.overrides
        if not bar:  # and MLflow's artifact download bars (tqdm), unless the environment says otherwise
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
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
