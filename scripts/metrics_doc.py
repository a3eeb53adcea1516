"""Write docs/metrics.md from the series catalogue and the worker's metric objects
(cc_monitor/metricsdoc.py); ``--check``: exit 1 if the file is not current.

    .venv/bin/python scripts/metrics_doc.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cc_monitor.metricsdoc import render  # noqa: E402

DOC = ROOT / "docs" / "metrics.md"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only check that the file is current")
    args = ap.parse_args()
    text = render()
    if args.check:
        if DOC.read_text(encoding="utf-8") != text:
            print("docs/metrics.md is not current: run scripts/metrics_doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
