"""`tkprefix <command>`: each command lives in its own module exposing `main(argv) -> int`."""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "build": ("tkprefix.build", "build the TK extension ahead of time"),
    "check": ("tkprefix.bench.check", "GPU correctness suite → CSV"),
    "bench": ("tkprefix.bench.cli_bench", "benchmark sweeps → CSV"),
    "record": ("tkprefix.bench.record", "copy a finished live run into data/h100"),
    "env": ("tkprefix.provenance", "provenance JSON (GPU, driver, CUDA, torch, TK commit)"),
    "doctor": ("tkprefix.doctor", "diagnose the known build and environment failures"),
    "plan-cost": ("tkprefix.plan_cost", "time building the ChunkAttention plan on the host"),
}


def usage() -> str:
    lines = ["usage: tkprefix <command> [args]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"tkprefix: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return run_command(argv[0], module.main, argv[1:])


def run_command(name: str, main, argv: list[str]) -> int:
    """main(argv) as the exit code; a results file that cannot be written (full disk, unwritable folder) is one
    line naming the path and exit code 74, not a traceback."""
    from .bench.schema import EXIT_OUTPUT, OutputError

    try:
        return int(main(argv) or 0)
    except OutputError as e:
        print(f"tkprefix {name}: {e}", file=sys.stderr)
        return EXIT_OUTPUT


if __name__ == "__main__":
    sys.exit(main())
