"""CPU time by process between two `cpu_snapshot` files (scripts/lib/bench-env.sh).

  cpu-by-process.py BEFORE AFTER              CPU seconds, the 12 busiest processes
  cpu-by-process.py BEFORE AFTER N WHAT       CPU µs per WHAT (N of them), the 6 busiest

Postgres backends are grouped by role (the words of their title without numbers).
"""
import collections
import re
import sys


def load(path):
    out = {}
    for line in open(path):
        pid, ticks, *cmd = line.split()
        out[pid] = (int(ticks), " ".join(cmd))
    return out


before, after = load(sys.argv[1]), load(sys.argv[2])
total = collections.Counter()
for pid, (ticks, cmd) in after.items():
    if "postgres: " in cmd:
        words = re.sub(r"[\d./()]+", " ", cmd.split("postgres: ")[-1]).split()
        name = "postgres: " + " ".join(words[:3])
    else:
        name = cmd.split()[0].split("/")[-1]
    total[name] += ticks - before.get(pid, (0, cmd))[0]
if len(sys.argv) > 3:
    n, what = int(sys.argv[3]), sys.argv[4]
    for name, ticks in total.most_common(6):
        if ticks:
            print(f"{ticks * 10000 / n:8.0f} µs/{what}  {name}")
    print(f"{sum(total.values()) * 10000 / n:8.0f} µs/{what}  all of the above ({n} of them)")
else:
    for name, ticks in total.most_common(12):
        print(f"{ticks / 100:8.1f} s  {name}")
    print(f"{sum(total.values()) / 100:8.1f} s  all of the above")
