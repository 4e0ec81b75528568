"""The ``quanta`` command line: ``quanta convert IN OUT`` rewrites an index file between
quanta's format and faiss's.

``python -m quanta convert in.faiss out.quanta`` (faiss -> quanta is the default for a faiss
file, quanta -> faiss for a quanta file; ``--to`` picks the format of ``OUT`` explicitly).
Exit status 0 on success, 1 with a message on standard error otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import _core
from .exceptions import QuantaError
from .io import read_index, write_index


def _convert(args: argparse.Namespace) -> None:
    src_is_faiss = _core.is_faiss_file(args.input)
    to = args.to or ("quanta" if src_is_faiss else "faiss")
    index = read_index(args.input)
    write_index(index, args.output, format=to)
    kind = index._index.kind
    src = "faiss" if src_is_faiss else "quanta"
    print(f"{args.input} ({src} file, {kind}, ntotal={index.ntotal}) -> {args.output} ({to})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quanta", description="quanta index files")
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser(
        "convert",
        help="rewrite an index file in quanta's or faiss's format",
        description="Read an index file (quanta's or faiss's format) and write it in the "
        "other format, or in the one --to names.",
    )
    conv.add_argument("input", help="index file to read (quanta or faiss)")
    conv.add_argument("output", help="file to write (atomically)")
    conv.add_argument(
        "--to", choices=["quanta", "faiss"], help="format of OUTPUT (default: the other one)"
    )
    args = parser.parse_args(argv)
    try:
        _convert(args)
    except (QuantaError, OSError) as e:
        print(f"quanta {args.command}: {e}", file=sys.stderr)
        return 1
    return 0
