"""Import (bench 5): ``followup contacts import`` of a generated CSV: rows/s and peak RSS of the process.

    python -m bench.importer [--rows 1000000] [--quick]
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import FOLLOWUP, MEMORY, env_for, info, reset_database, result, wait_rss, write_config


def generate(path: Path, rows: int) -> None:
    """Persian and Latin names, Iranian mobiles in mixed formats, emails, tags, an extra attrs column."""
    formats = ("0912{:07d}", "+98912{:07d}", "۰۹۱۲{:07d}", "98912{:07d}")
    digits = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "email", "first_name", "last_name", "tags", "external_id", "city"])
        for i in range(rows):
            fmt = formats[i % 4]
            ph = fmt.format(i)
            if fmt.startswith("۰"):
                ph = "۰۹۱۲" + f"{i:07d}".translate(digits)
            w.writerow([ph, f"lead{i}@example.com" if i % 3 else "", "سارا" if i % 2 else "Sara",
                        "احمدی" if i % 2 else "Ahmadi", "winter;lead" if i % 5 else "newsletter", f"crm-{i}",
                        "تهران" if i % 2 else "Shiraz"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--quick", action="store_true", help="100,000 rows")
    args = p.parse_args()
    rows = 100_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        url = f"sqlite:///{tmp}/import.db"
        cfg = write_config(tmp, url, sms=MEMORY)
        reset_database(url)
        csv_path = tmp / "contacts.csv"
        t0 = time.perf_counter()
        generate(csv_path, rows)
        info(f"generated {rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f}s")
        log = tmp / "import.log"
        with log.open("w") as fh:
            start = time.perf_counter()
            proc = subprocess.Popen([FOLLOWUP, "contacts", "import", str(csv_path)], env=env_for(cfg),
                                    stdout=fh, stderr=fh)
            code, rss = wait_rss(proc, timeout=3600)
            took = time.perf_counter() - start
        tail = log.read_text(encoding="utf-8").strip().splitlines()[-1:]
        info(f"exit {code}: {tail[0] if tail else ''}")
        label = f"{rows // 1000}k" if rows < 1_000_000 else f"{rows / 1e6:g}M"
        result(f"import[sqlite,{label} rows] rate", f"{rows / took:.0f} rows/s ({took:.0f}s for {label} rows)",
               "informational", None)
        result(f"import[sqlite,{label} rows] peak RSS", f"{rss:.1f} MB", "< 200 MB", rss < 200 and code == 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
