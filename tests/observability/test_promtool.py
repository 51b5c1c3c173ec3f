"""promtool (Debian's prometheus package) checks the rules, runs their unit tests and
checks the example scrape configuration."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .queries import PROMETHEUS_DIR, RULES, RULES_TEST, SCRAPE_CONFIG


def promtool_run(promtool: str, *args: str, cwd: Path = PROMETHEUS_DIR
                 ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


def test_rules_check(promtool: str) -> None:
    result = promtool_run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_rules_unit_tests_pass(promtool: str) -> None:
    result = promtool_run(promtool, "test", "rules", RULES_TEST.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_unit_tests_catch_a_wrong_threshold(promtool: str, tmp_path: Path) -> None:
    # The unit tests pin the thresholds: with the age threshold raised tenfold the
    # firing case of QueueCTLOldestJobTooOld must fail.
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    rules = RULES.read_text()
    assert rules.count("queuectl_queue_oldest_job_age_seconds) > 600") == 1
    (tmp_path / RULES.name).write_text(
        rules.replace("queuectl_queue_oldest_job_age_seconds) > 600",
                      "queuectl_queue_oldest_job_age_seconds) > 6000"))
    result = promtool_run(promtool, "test", "rules", RULES_TEST.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "alertname: QueueCTLOldestJobTooOld" in result.stdout + result.stderr


def test_example_scrape_config(promtool: str) -> None:
    result = promtool_run(promtool, "check", "config", str(SCRAPE_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid prometheus config file syntax" in result.stdout
    # The config loads the rules next to it, and promtool checks those too.
    assert "SUCCESS: 1 rule files found" in result.stdout
