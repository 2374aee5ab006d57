#!/usr/bin/env python3
"""it_run: `make run` semantics (deploy/local-cluster.sh, SPEC §8).

Skipped (exit 0, "0 passed, 0 failed") while deploy/local-cluster.sh does
not exist."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chorus_harness import SOURCE_DIR  # noqa: E402


def main():
    script = os.path.join(SOURCE_DIR, "deploy", "local-cluster.sh")
    if not os.path.exists(script):
        print("SKIP it_run: %s does not exist yet" % script)
        print("0 passed, 0 failed")
        return 0
    # TODO(lead): start the three-node local cluster through the script on
    # free ports/a temp dir, check /admin/cluster on 8081-8083 agrees on one
    # leader, publish on one node and read on another, then stop it.
    print("it_run: %s exists; the test is not written yet (TODO)" % script)
    print("0 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
