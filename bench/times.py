"""The benchmarks' bookkeeping: a times file of "KEY SECONDS" lines, one per measurement.

    gravity plan --output json | python3 bench/times.py phases PREFIX >> TIMES
        appends each finished phase of the journaled plan as "PREFIX:NAME SECONDS"
    medians(TIMES)
        (runs per key, median per key), for the scripts' summaries (PYTHONPATH=bench)
"""

import collections
import json
import statistics
import sys


def medians(path):
    runs = collections.defaultdict(list)
    for line in open(path):
        key, value = line.split()
        runs[key].append(float(value))
    return ({k: len(v) for k, v in runs.items()},
            {k: statistics.median(v) for k, v in runs.items()})


def phases(prefix):
    for p in json.load(sys.stdin)["phases"]:
        if p.get("finishedMs") and p.get("startedMs"):
            print(f"{prefix}:{p['name']} {(p['finishedMs'] - p['startedMs']) / 1000}")


if __name__ == "__main__" and sys.argv[1:2] == ["phases"]:
    phases(sys.argv[2])
