"""The README's two commands are real: CI runs the README's test command, and the
README's main command starts a Jupyter server that lists the lessons."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
LAB_COMMAND = "python3 course.py lab"
TEST_COMMAND = "python3 course.py test"


def test_readme_prints_both_commands():
    assert re.search(rf"^\s*{re.escape(LAB_COMMAND)}\s*$", README, re.M)
    assert re.search(rf"^\s*{re.escape(TEST_COMMAND)}\s*$", README, re.M)


def test_ci_runs_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line.strip() for line in script.splitlines() if not line.lstrip().startswith("#")]
    assert any(line.startswith(TEST_COMMAND) for line in commands), script


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _stop(server):
    """Stop `course.py lab` and the Jupyter server it started (its child), on any OS."""
    if os.name == "posix":
        os.killpg(server.pid, signal.SIGTERM)  # the whole session: course.py and Jupyter
    else:
        server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        if os.name == "posix":
            os.killpg(server.pid, signal.SIGKILL)
        server.kill()


def test_lab_command_serves_the_lessons(tmp_path):
    port, token = _free_port(), "course-test-token"
    command = [
        sys.executable, str(ROOT / "course.py"), "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0",
    ]
    log = open(tmp_path / "lab.log", "w+")  # a file, not a pipe: a full pipe would block Jupyter
    server = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
                              start_new_session=os.name == "posix")
    try:
        base = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + 240  # the first call may run the set-up
        listing = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                listing = _get_json(f"{base}/contents?token={token}")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(1)
        assert listing is not None, f"the Jupyter server did not answer; it printed:\n{(tmp_path / 'lab.log').read_text()}"
        served = sorted(item["name"] for item in listing["content"] if item["name"].endswith(".ipynb"))
        expected = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
        assert served == expected
        kernels = _get_json(f"{base}/kernelspecs?token={token}")
        assert "python3" in kernels["kernelspecs"]
    finally:
        _stop(server)
        log.close()
