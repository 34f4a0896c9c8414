"""bench/instructions' arithmetic: PostgreSQL's instructions by side (synchronous import, job) from
callgrind's files, and the difference between two sizes.

    instructions.py check DIR                  the two answers agree, and each side's total
    instructions.py report OUT FUNCTIONS N...  every size's totals, then the marginal ratio
"""
import collections
import json
import re
import subprocess
import sys


def side_files(directory, side):
    """The backends that ended during a side: (synchronous import) between marks 0 and 1, (job) 1 and 2."""
    ended = [set(open(f"{directory}/ended-{k}").read().split()) for k in range(3)]
    return sorted(ended[side] - ended[side - 1])


def total(directory, name):
    with open(f"{directory}/{name}") as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    return 0


def totals(directory):
    return {side: sum(total(directory, f) for f in side_files(directory, k)) for k, side in ((1, "sync"), (2, "job"))}


def functions(directory, side):
    """Instructions by function (exclusive), over the backends of one side."""
    counts = collections.Counter()
    for name in side_files(directory, 1 if side == "sync" else 2):
        listing = subprocess.run(["callgrind_annotate", "--threshold=100", f"{directory}/{name}"],
                                 capture_output=True, text=True, check=True).stdout
        for line in listing.splitlines():
            m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(\S.*)$", line)
            if m and ":" in m.group(2):
                counts[m.group(2).split(" [")[0]] += int(m.group(1).replace(",", ""))
    return counts


def check(directory):
    sync = json.load(open(f"{directory}/sync.json"))
    job = json.load(open(f"{directory}/job.json"))
    keys = ("imported", "duplicates", "invalid", "errors", "total")
    if job.get("state") != "finished" or any(sync.get(k) != job["counts"].get(k) for k in keys):
        sys.exit(f"bench/instructions: the job {job.get('state')} {job.get('counts')} differs from the import {sync}")
    t = totals(directory)
    print(f"   sync {t['sync'] / 1e9:.3f} G instructions, job {t['job'] / 1e9:.3f} G ({t['job'] / t['sync']:.3f} x); "
          f"counts {[sync[k] for k in keys]}", file=sys.stderr)


def report(out, top, sizes):
    rows = {n: totals(f"{out}/{n}") for n in sizes}
    print("PostgreSQL's instructions (callgrind), synchronous import and job of the same list:")
    for n in sizes:
        t = rows[n]
        print(f"  {int(n):>9,} members: sync {t['sync'] / 1e9:8.3f} G   job {t['job'] / 1e9:8.3f} G   job / sync {t['job'] / t['sync']:.3f}")
    if len(sizes) >= 2:
        small, big = sizes[0], sizes[-1]
        members = int(big) - int(small)
        sync = rows[big]["sync"] - rows[small]["sync"]
        job = rows[big]["job"] - rows[small]["job"]
        print(f"  the {members:,} members between {int(small):,} and {int(big):,}: sync {sync / members:,.0f}, "
              f"job {job / members:,.0f} instructions a member; job / sync {job / sync:.3f}")
        if top > 0:
            base = {side: functions(f"{out}/{small}", side) for side in ("sync", "job")}
            diff = {}
            for side in ("sync", "job"):
                counts = functions(f"{out}/{big}", side)
                counts.subtract(base[side])
                diff[side] = counts
            names = set(diff["sync"]) | set(diff["job"])
            print(f"  functions whose count the job raises most, over those {members:,} members (millions):")
            for name in sorted(names, key=lambda k: diff["sync"][k] - diff["job"][k])[:top]:
                print(f"    {(diff['job'][name] - diff['sync'][name]) / 1e6:9.1f}   sync {diff['sync'][name] / 1e6:9.1f}   "
                      f"job {diff['job'][name] / 1e6:9.1f}   {name[-100:]}")


if __name__ == "__main__":
    if sys.argv[1] == "check":
        check(sys.argv[2])
    else:
        report(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
