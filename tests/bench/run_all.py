"""Run every benchmark under tests/bench (files named bench_*.py), each in its own
process, and let them print their figures. `make bench BENCH_ARGS="coldstart"` runs
only the benchmarks whose name contains one of the words given."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    wanted = [word for word in argv if not word.startswith("-")]
    scripts = sorted(HERE.glob("bench_*.py"))
    if wanted:
        scripts = [s for s in scripts if any(w in s.stem for w in wanted)]
    if not scripts:
        print(f"no benchmark matches {wanted}; have: {[s.stem for s in HERE.glob('bench_*.py')]}")
        return 2
    failed = []
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        if subprocess.call([sys.executable, str(script)], cwd=HERE.parent.parent) != 0:
            failed.append(script.stem)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
