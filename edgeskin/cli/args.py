"""Argument groups several `edgeskin` commands share (parsing only; the rules live in edgeskin.contract)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_contract_args(p: argparse.ArgumentParser) -> None:
    """--classes, --classes-file, --mean, --std, --crop-border: what a checkpoint may not carry."""
    group = p.add_argument_group("model contract (required where the checkpoint does not carry it; overrides it where it does)")
    group.add_argument("--classes", default=None, help="class names in output order, comma-separated (e.g. MEL,NV,BCC)")
    group.add_argument("--classes-file", type=Path, default=None, help="class names in output order, one per line")
    group.add_argument("--mean", default=None, help="normalization mean R,G,B on 0..1 pixels (e.g. 0.485,0.456,0.406)")
    group.add_argument("--std", default=None, help="normalization std R,G,B (e.g. 0.229,0.224,0.225)")
    group.add_argument("--crop-border", action=argparse.BooleanOptionalAction, default=None,
                       help="crop black dermatoscope borders before resizing (the paper's preprocessing)")


def stated_from_args(args):
    from edgeskin.contract import stated_contract

    return stated_contract(args.classes, args.classes_file, args.mean, args.std, args.crop_border)
