"""Settings reach child processes whole: what was given in code wins there too; what was not given still comes
from the child's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

from flatqc.settings import Settings, settings_env
from qc.config import QCConfig

DUMP = "from flatqc.settings import Settings; print(Settings().model_dump_json())"


def test_a_child_process_gets_the_settings_given_in_code() -> None:
    given = Settings(queue_name="night-q", crires=replace(QCConfig(), snr_limit=199.0),
                     alert_urls=["json://127.0.0.1:9/hook"], job_retry_intervals=["1", "2"], workers=3)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLATQC_")}
    env = clean | settings_env(given) | {"FLATQC_QUEUE_NAME": "from-env", "FLATQC_RESCAN_INTERVAL_S": "7"}
    out = subprocess.run([sys.executable, "-c", DUMP], env=env, capture_output=True, text=True, check=True).stdout
    child = json.loads(out)
    expected = json.loads(given.model_dump_json()) | {"rescan_interval_s": 7.0}
    assert child == expected
    assert child["crires"]["snr_limit"] == 199.0 and child["queue_name"] == "night-q"
