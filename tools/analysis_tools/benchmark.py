"""instseg's benchmarks behind one command: each subcommand prints a table, --json writes it."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
# subcommand -> module under tools/analysis_tools/benchmarks/
SUBCOMMANDS = {
    'inference': 'inference',
    'vs-torchvision': 'vs_torchvision',
    'cascade': 'cascade',
    'data': 'data',
    'memory': 'memory',
    'assigner': 'assigner',
    'coco-eval': 'coco_eval',
    'yolact': 'yolact',
}
EXAMPLES = """examples:
  python tools/analysis_tools/benchmark.py inference CONFIG CKPT --num-images 50 --warmup 5
  python tools/analysis_tools/benchmark.py vs-torchvision --threads 2 --json bench.json
  python tools/analysis_tools/benchmark.py assigner --size 1024 --instances 1862

'python tools/analysis_tools/benchmark.py SUBCOMMAND --help' describes one benchmark. Each
module in tools/analysis_tools/benchmarks/ has add_arguments(parser) and run(args) -> dict;
add a benchmark by writing one and naming it in SUBCOMMANDS.
"""


def subcommand_module(name: str) -> ModuleType:
    """The module behind subcommand ``name`` (``'vs-torchvision'`` -> benchmarks/vs_torchvision)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return importlib.import_module(f'benchmarks.{SUBCOMMANDS[name]}')


def build_parser() -> argparse.ArgumentParser:
    """The command line: one sub-parser per benchmark, each with ``--json PATH``."""
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest='command', required=True, metavar='SUBCOMMAND')
    for name in SUBCOMMANDS:
        module = subcommand_module(name)
        doc = module.__doc__ or ''
        sub = commands.add_parser(
            name,
            help=doc.split('\n\n')[0].replace('\n', ' '),
            description=doc.split('\n\n')[0],
            epilog=doc.split('\n\n', 1)[1] if '\n\n' in doc else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.add_argument('--json', metavar='PATH', help='also write the figures to this JSON file')
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``argv`` for calling from Python)."""
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Run one benchmark; returns the figures it printed (and wrote to ``--json``)."""
    args = parse_args(argv)
    module = subcommand_module(args.command)
    if getattr(args, 'worker', None):  # one measurement in a fresh process (common.spawn_worker)
        result = module.run_worker(args)
        print(json.dumps(result))
        return result
    result = module.run(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + '\n')
        print(f'figures written to {args.json}')
    return result


if __name__ == '__main__':
    main()
