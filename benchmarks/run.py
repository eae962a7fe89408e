"""Run the benchmark from a checkout without the `userdebtor` command: `python benchmarks/run.py --scale 20000`.

Takes exactly the flags of `userdebtor bench` and exits with its statuses.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from userdebtor_pipeline.cli import main  # noqa: E402  (the checkout first on the path)

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
