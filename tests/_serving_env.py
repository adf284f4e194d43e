"""A virtual environment holding only a model's own requirements, installed offline (test helper).

Built with ``python -m venv`` from the requirements file given (the model's
``requirements.txt``), with pip's ``--no-index`` from the wheels ``make setup`` downloaded
into ``.cache/wheels`` (``make serving-wheels``): no network, no fusionrec, no Spark.
Installing about a hundred wheels takes a while, so an environment is kept under
``.cache/serving-envs/<hash of the requirement set>`` and reused while the set is the
same; a set that changes gets a new one and the old ones are removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
WHEELS = PROJECT / ".cache" / "wheels"
ENVS = PROJECT / ".cache" / "serving-envs"
_COMPLETE = ".complete"


def requirement_set(requirements: Path) -> list[str]:
    """The requirement lines of a requirements file, sorted (comments and blanks left out)."""
    lines = (line.split("#", 1)[0].strip() for line in requirements.read_text().splitlines())
    return sorted(line for line in lines if line)


def serving_env(requirements: Path) -> Path:
    """The Python of a virtual environment with exactly ``requirements`` installed offline."""
    wanted = requirement_set(requirements)
    key = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:16]
    env = ENVS / key
    python = env / "bin" / "python"
    ENVS.mkdir(parents=True, exist_ok=True)
    with (ENVS / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test sessions build it once
        if (env / _COMPLETE).is_file():
            return python
        for stale in ENVS.iterdir():
            if stale.is_dir():
                shutil.rmtree(stale)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
        install = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-index",
             "--find-links", str(WHEELS), "--requirement", str(requirements)],
            capture_output=True, text=True)
        if install.returncode != 0:
            shutil.rmtree(env, ignore_errors=True)
            raise RuntimeError(f"offline install of {requirements} from {WHEELS} failed "
                               f"(run 'make serving-wheels'):\n{install.stderr[-3000:]}")
        (env / _COMPLETE).write_text("\n".join(wanted) + "\n")
    return python


if __name__ == "__main__":  # make serving-env: build it ahead of the tests
    print(serving_env(Path(sys.argv[1])))
