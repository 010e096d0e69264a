"""Fault injection for the crash tests: `CDC_FAULT=POINT` or `CDC_FAULT=TABLE:POINT` kills the process (SIGKILL)
when it reaches that point, the way a power cut or an OOM kill would. Unset (always, outside tests): a no-op.
"""

from __future__ import annotations

import os
import signal


def point(name: str, table: str = "") -> None:
    """Die here if the environment asks for it."""
    wanted = os.environ.get("CDC_FAULT")
    if wanted and wanted in (name, f"{table}:{name}"):
        os.kill(os.getpid(), signal.SIGKILL)
