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


# import names of the [convert] extra (pyproject.toml): a command that needs one, run in a
# torch-free install (numpy + Pillow + edgeskin[pi]), says which extra to install
CONVERT_MODULES = frozenset({"torch", "timm", "safetensors", "tqdm", "onnx", "onnxruntime", "litert_torch", "ai_edge_quantizer",
                             "ai_edge_litert", "coremltools", "sklearn", "matplotlib", "pydantic"})


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
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in CONVERT_MODULES:
            raise  # not a missing extra: a bug, with its traceback
        print(f"edgeskin: error: `edgeskin {args.command}` needs the [convert] extra ({missing} is not installed): "
              "pip install 'edgeskin[convert]'", file=sys.stderr)
        return 2
