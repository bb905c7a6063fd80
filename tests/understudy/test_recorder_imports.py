"""The recorder process loads what recording needs, not the web UI and the statistics."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_recorder_does_not_load_the_web_ui_or_scipy() -> None:
    # A fresh interpreter: this one has imported everything the other tests use.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, understudy.recorder; print(json.dumps(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    modules = set(json.loads(loaded.stdout))
    assert "storage.writer" in modules  # what it is for
    unwanted = {"scipy", "dashboards", "evaluation", "admin"}
    assert not {m.split(".")[0] for m in modules} & unwanted
