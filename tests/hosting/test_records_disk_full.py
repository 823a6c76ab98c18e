"""Record files on a disk that refuses writes (vinom.hosting.records): a child
process whose file size limit is 0 (RLIMIT_FSIZE, SIGXFSZ ignored) gets the
kernel's own error on every write, as on a full disk, and records matches."""
# slow: runs a child process with a file size limit

from __future__ import annotations

import json
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

CHILD = """
import json, resource, signal, sys
from twisted.logger import globalLogBeginner, textFileLogObserver
from vinom.hosting.records import RecordFiles, RecordSettings
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
files = RecordFiles(RecordSettings(directory=sys.argv[1]))
resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
for n in range(50):
    files.write(f"m-{n}", 0.0, b"abc", closed=False)
    files.write(f"m-{n}", 0.0, b"def", closed=True)
files.close()
print(json.dumps({"write_errors": files.write_errors}))
"""


class DiskFullTests(SynchronousTestCase):
    def test_matches_on_a_full_disk_leave_no_empty_files_and_three_log_lines(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        done = subprocess.run(
            [sys.executable, "-c", CHILD, directory], capture_output=True, text=True,
            timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )  # fmt: skip
        self.assertEqual(done.returncode, 0, done.stderr)
        # Every match's record was lost (counted); the process went on.
        self.assertEqual(json.loads(done.stdout)["write_errors"], 50)
        warnings = [line for line in done.stderr.splitlines() if "cannot write" in line]
        self.assertEqual(len(warnings), 3, done.stderr)
        # No file a match could not write into is left behind (a file per match, on
        # a full disk, would fill the directory with empty files).
        self.assertEqual(os.listdir(directory), [])
