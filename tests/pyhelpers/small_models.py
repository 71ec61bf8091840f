"""What the pytest suites that drive the attend command line share: running it, and two small
dates models (an RNN and a Transformer) trained in seconds."""

import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
CLI = os.environ.get("ATTEND_CLI", os.path.join(HERE, "..", "..", "build", "attend"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def attend(*args, check=True):
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=600, env=ENV)
    if check and r.returncode != 0:
        raise AssertionError(f"attend {' '.join(map(str, args))}: exit {r.returncode}\n{r.stderr}")
    return r


def train_small_models(root):
    """root/rnn (90 updates, evaluated every 30) and root/transformer (2 x 4 heads, C = 32, 40 updates)."""
    common = ["--task", "dates", "--dates-train", "2000", "--seed", "1", "--threads", "1"]
    attend("train", *common, "--max-steps", "90", "--eval-every", "30", "--out", root / "rnn")
    attend("train", *common, "--model", "transformer", "--dim", "32", "--heads", "4", "--ffn", "64",
           "--layers", "2", "--max-steps", "40", "--eval-every", "20", "--out", root / "transformer")
    return root
