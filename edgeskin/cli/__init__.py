"""`edgeskin` command line: train, distill, cascade, eval, info, convert, predict, parity, bench.

This package only parses arguments and prints; the work is done by the modules below it, which
never import it. Every user-facing failure is an EdgeskinError, printed as one line
`edgeskin: error: ...` with exit code 2; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edgeskin.runtime.errors import EdgeskinError

# command -> the module (in this package) holding its parser and its cmd_<command> function.
# A group module imports its heavy libraries inside the command functions, so loading every
# group to build the parser stays cheap; the command's own work is imported when it runs.
COMMANDS = {"train": "training", "distill": "training", "cascade": "training", "eval": "evaluation", "info": "evaluation",
            "convert": "convert", "predict": "convert", "parity": "parity", "bench": "parity"}


def _group(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeskin", description="SkinDistilViT: train, distill, evaluate and ship to the edge.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in dict.fromkeys(COMMANDS.values()):
        _group(name).add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = getattr(_group(COMMANDS[args.command]), f"cmd_{args.command}")
    try:
        return command(args)
    except EdgeskinError as exc:
        print(f"edgeskin: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgeskin: interrupted", file=sys.stderr)
        return 130
