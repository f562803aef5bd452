"""Peak resident memory of a full ``handprop train --dataset mnist``, measured
with GNU time (``/usr/bin/time -v``), against the 450 MB target. The float32
data alone (70,000 images of 784 pixels) is about 220 MB.

    HANDPROP_DATA=../shared/data python benchmarks/memory.py [extra train arguments]
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile

TARGET_MB = 450


def main() -> None:
    extra = sys.argv[1:]
    with tempfile.TemporaryDirectory() as out:
        command = ["/usr/bin/time", "-v", sys.executable, "-m", "handprop", "train",
                   "--dataset", "mnist", "--out", out, "--no-progress", *extra]
        r = subprocess.run(command, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"handprop train failed:\n{r.stderr}")
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", r.stderr).group(1)
    print(r.stdout.strip().splitlines()[-2])
    print(f"peak resident memory: {kb / 1024:.0f} MB (target {TARGET_MB} MB), wall time {wall}")
    print(f"command: handprop train --dataset mnist {' '.join(extra)}".rstrip())


if __name__ == "__main__":
    main()
