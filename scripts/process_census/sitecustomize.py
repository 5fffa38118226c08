"""Loaded by every Python process whose PYTHONPATH holds this folder (Python imports `sitecustomize` at start up):
when PROCESS_CENSUS_LOG names a file, the process appends one JSON line to it at exit: its argv, wall and CPU
seconds, whether it imported fairseq or ran pytest, and the test that started it (PYTEST_CURRENT_TEST, inherited).

    export PYTHONPATH=$PWD/scripts/process_census PROCESS_CENSUS_LOG=/tmp/census.jsonl   # absolute: tests change cwd
    make test PYTEST_ARGS="-n 2 --dist loadfile"
    python scripts/process_census/report.py /tmp/census.jsonl

A process killed by a signal writes nothing; a child started with a cleared environment is not counted.
"""

import os

if os.environ.get("PROCESS_CENSUS_LOG"):
    import atexit
    import json
    import resource
    import sys
    import time

    _started = time.time()

    def _write_census_line():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        line = {
            "argv": sys.argv[:6],
            "wall": round(time.time() - _started, 2),
            "cpu": round(usage.ru_utime + usage.ru_stime, 2),
            "fairseq": "fairseq" in sys.modules,
            "test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
            "ran_pytest": "pytest" in sys.modules,  # a pytest process (xdist worker or controller), not a test's child
        }
        # one write() of one short line: appends from concurrent processes do not interleave
        with open(os.environ["PROCESS_CENSUS_LOG"], "a") as log:
            log.write(json.dumps(line) + "\n")

    atexit.register(_write_census_line)
