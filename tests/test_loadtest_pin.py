"""--pin: the server gets CPU 0 alone; the load tester and its processes take the others."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_pin_keeps_the_load_tester_and_its_children_off_the_servers_cpu():
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        pytest.skip("needs two CPUs and sched_setaffinity")
    code = ("import os, subprocess, sys; from loadtest.target import keep_off_cpu; "
            "assert keep_off_cpu(0); print(sorted(os.sched_getaffinity(0))); "
            "subprocess.run([sys.executable, '-c', "
            "'import os; print(sorted(os.sched_getaffinity(0)))'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert "0" not in out[0].strip("[]").split(", ") and out[0] == out[1]
