"""The pandas side of the ingestion benchmark: openSMILE CSV to parquet, as a notebook would.

Usage: python pandas_ingest.py CSV OUT.parquet
Prints one JSON line: read and write seconds, and this process's peak resident set size.
Imports happen before the clock starts, so the seconds are the work itself.
"""

import json
import resource
import sys
import time

import pandas as pd
import pyarrow  # noqa: F401  (to_parquet's engine; imported here so its load is not timed)


def main() -> None:
    source, target = sys.argv[1], sys.argv[2]
    started = time.perf_counter()
    frame = pd.read_csv(source, sep=";")
    read = time.perf_counter()
    frame.to_parquet(target)
    written = time.perf_counter()
    # Linux reports ru_maxrss in KiB.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "read_s": read - started,
                "write_s": written - read,
                "rows": len(frame),
                "peak_rss_kib": peak,
            }
        )
    )


if __name__ == "__main__":
    main()
