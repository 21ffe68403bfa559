"""A real crabmail for the tests: the binary from CRABMAIL_BIN (the Rust test that runs this
suite sets it), else the workspace's debug build, on ports the OS picks, in a temporary data
directory."""

import os
import re
import subprocess
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


class Server:
    def __init__(self, tmp: Path, settings=()):
        binary = os.environ.get("CRABMAIL_BIN") or str(REPO / "target" / "debug" / "crabmail")
        args = [binary, "serve", "--data-dir", str(tmp / "data")]
        for flag in ("--api-listen", "--mx-listen", "--submission-listen", "--submissions-listen"):
            args += [flag, "127.0.0.1:0"]
        for setting in settings:
            args += ["--set", setting]
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=dict(os.environ, CRABMAIL_LOG="info"),
        )
        for line in self.process.stdout:
            if "crabmail is serving" in line:
                self.url = "http://" + re.search(r"api=(\S+)", line).group(1)
                break
        else:
            raise RuntimeError("crabmail exited before serving")
        # Keep reading the log so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()

    def stop(self):
        self.process.kill()
        self.process.wait()


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path)
    yield s
    s.stop()


@pytest.fixture
def start_server(tmp_path):
    started = []

    def start(*settings):
        s = Server(tmp_path / str(len(started)), settings)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
