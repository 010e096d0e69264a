"""Fault injection for the crash tests: `CDC_FAULT=POINT` or `CDC_FAULT=TABLE:POINT` kills the process (SIGKILL)
when it reaches that point, the way a power cut or an OOM kill would; `CDC_PAUSE=TABLE:POINT:SECONDS` stalls it
there (a slow writer, for the race tests) — until the file `CDC_RESUME` names exists, when that is set, so a test
lets it go on right after the other writer is done, however loaded the machine. Unset (always, outside tests): a
no-op.
"""

from __future__ import annotations

import os
import signal
import time


def point(name: str, table: str = "") -> None:
    """Die here if the environment asks for it."""
    wanted = os.environ.get("CDC_FAULT")
    if wanted and wanted in (name, f"{table}:{name}"):
        os.kill(os.getpid(), signal.SIGKILL)
    pause = os.environ.get("CDC_PAUSE", "").rsplit(":", 1)
    if len(pause) == 2 and pause[0] in (name, f"{table}:{name}"):
        resume, until = os.environ.get("CDC_RESUME"), time.monotonic() + float(pause[1])
        while time.monotonic() < until and not (resume and os.path.exists(resume)):
            time.sleep(0.05)
