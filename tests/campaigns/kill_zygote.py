"""A pre-imported parent that forks real sender processes for the kill-and-resume test.

Importing pandas, SQLAlchemy and Prefect takes seconds; forking a process that already
has them takes milliseconds, so the test can SIGKILL many real senders at random points.
Nothing touches the warehouse before a fork: every child opens its own connections.

Protocol (one JSON object per line): the test writes a command, the zygote answers
``{"pid": N}`` when the child started and ``{"pid": N, "status": S}`` when it ended.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from datetime import date, datetime

from tasks.campaigns.definitions import load_campaigns
from tasks.campaigns.engine import plan_campaign
from tasks.messaging import send_due


def _run(cmd: dict) -> None:
    from userops.settings import reset_settings

    os.environ.update(cmd.get("env", {}))  # this child's warehouse, campaigns directory, ...
    reset_settings()
    now = datetime.fromisoformat(cmd["now"])
    for c in load_campaigns():
        plan_campaign(c, date.fromisoformat(cmd["as_of"]), now=now)
    send_due(now=now, batch_size=cmd["batch"], workers=cmd["workers"], sms_url=cmd["sms_url"])


def main() -> None:
    out = sys.stdout.buffer
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        cmd = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _run(cmd)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        out.write(json.dumps({"pid": pid}).encode() + b"\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        out.write(json.dumps({"pid": pid, "status": status}).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
