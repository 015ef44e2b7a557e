"""A run of one window in a process of its own, on the instance DAGSTER_HOME names, with
the `V6_*` settings of its environment: it loads everything, prints `ready`, and starts
the run when a line arrives on stdin (so a test decides when two processes collide).

    python -m v6_pipeline_tests.production.window_worker 2026-11-25-14:05
"""

from __future__ import annotations

import sys

import dagster as dg

from v6_pipeline.definitions import build_defs
from v6_pipeline.defs.resources import resources_from_env


def main(key: str) -> int:
    job = build_defs(resources_from_env()).resolve_job_def("reconciliation_job")
    with dg.DagsterInstance.get() as instance:
        print("ready", flush=True)
        sys.stdin.readline()
        # Dagster's own pool claim, without the project's wait in front of it.
        result = job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False)
        print(result.run_id, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
