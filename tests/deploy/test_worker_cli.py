"""`userops serve --worker-only` without a server address: a plain CLI check, no server
needed (outside the ``deploy`` xdist group so it does not wait for the serve tests)."""
from __future__ import annotations

import os
import subprocess
import sys


def test_worker_only_needs_the_server_address(tmp_path):
    # A fresh process: in this one a session's Prefect test server may already be the API.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(USEROPS_LANGUAGE="en", PREFECT_HOME=str(tmp_path / "prefect-home"))
    r = subprocess.run(
        [sys.executable, "-m", "userops.cli", "serve", "--worker-only"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--worker-only needs PREFECT_API_URL" in r.stdout + r.stderr
