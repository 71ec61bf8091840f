"""Data-parallel training on MPI (mpirun -np N attend train), on loopback: N processes with batch
b equal one process with batch N x b (RNN and Transformer; N = 2 and 3), two runs are byte-
identical, ranks started with different arguments stop with a clear error, a killed rank stops
the others and the run resumes to the same bytes, and a run resumes only on its own rank count;
with --shard-optimizer the same training, and resumes to the same bytes; distillation splits
the teachers' cache between the ranks.
"""

import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pyhelpers"))
from small_models import CLI, ENV, attend  # noqa: E402

MPIRUN = shutil.which("mpirun")
pytestmark = pytest.mark.skipif(MPIRUN is None, reason="mpirun not installed (scripts/install-deps.sh build)")

# Root may run mpirun only when it says so; --oversubscribe: more ranks than cores.
MPI_FLAGS = ["--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,vader,tcp", "--bind-to", "none"]
BASE = ["--task", "dates", "--dates-train", "1000", "--seed", "3", "--threads", "1", "--dropout", "0"]
COMMON = BASE + ["--max-steps", "24", "--eval-every", "8"]
TRANSFORMER = ["--model", "transformer", "--dim", "32", "--heads", "4", "--ffn", "64", "--layers", "2"]


def mpi(n, *args, timeout=600, check=True):
    r = subprocess.run([MPIRUN, *MPI_FLAGS, "-np", str(n), CLI, *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=ENV)
    if check and r.returncode != 0:
        raise AssertionError(f"mpirun -np {n} attend {' '.join(map(str, args))}: exit {r.returncode}\n{r.stderr}")
    return r


def weights(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    return {k: np.frombuffer(data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], dtype=np.float32)
            for k, v in header.items() if k != "__metadata__"}


def losses(d):
    return [json.loads(line)["train_loss"] for line in open(d / "metrics.jsonl")]


def assert_same_training(a, b, tol, per_tensor=False):
    la, lb = losses(a), losses(b)
    assert len(la) == len(lb) == 3
    assert np.allclose(la, lb, rtol=1e-5), (la, lb)
    wa, wb = weights(a / "model.safetensors"), weights(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    if per_tensor:  # each tensor's difference relative to its norm: one weight cannot decide it
        worst, name = max((float(np.linalg.norm(wa[k] - wb[k]) / np.linalg.norm(wa[k])), k) for k in wa)
        assert worst < tol, f"weights differ by {worst:.2e} of their tensor's norm ({name})"
        return
    # Relative to the largest weight of the model: some parameters have no gradient in exact
    # arithmetic (a key's bias shifts every score of a query alike) and hold only rounding noise.
    scale = max(float(np.max(np.abs(w))) for w in wa.values())
    worst, name = max((float(np.max(np.abs(wa[k] - wb[k]))) / scale, k) for k in wa)
    assert worst < tol, f"weights differ by {worst:.2e} of the largest weight ({name})"


@pytest.mark.parametrize("ranks,arch", [(2, "rnn"), (2, "transformer"), (3, "rnn")])
def test_n_ranks_with_batch_b_equal_one_process_with_batch_n_b(tmp_path, ranks, arch):
    extra = TRANSFORMER if arch == "transformer" else []
    attend("train", *COMMON, *extra, "--batch", 6 * ranks, "--out", tmp_path / "one")
    r = mpi(ranks, "train", *COMMON, *extra, "--batch", 6, "--out", tmp_path / "many")
    assert f"{ranks} processes" in r.stderr and r.stdout.count("trained 24 steps") == 1  # rank 0 reports
    # The same batches and the same mean gradient; only the order of float sums differs.
    assert_same_training(tmp_path / "one", tmp_path / "many", tol=1e-4)
    # Dev decoding was split across the ranks: what they recorded is what attend eval measures.
    last = [r for r in map(json.loads, open(tmp_path / "many/metrics.jsonl")) if r["best"]][-1]  # the saved model
    measured = json.loads(attend("eval", "--model", tmp_path / "many", "--test", tmp_path / "many/dev.tsv",
                                 "--json").stdout)
    assert (last["dev_exact_match"], last["dev_error_rate"]) == (measured["exact_match"], measured["token_error_rate"])


def test_two_runs_with_the_same_ranks_are_byte_identical(tmp_path):
    for d in ("a", "b"):
        mpi(2, "train", *COMMON, "--batch", 5, "--out", tmp_path / d)
    assert open(tmp_path / "a/model.safetensors", "rb").read() == open(tmp_path / "b/model.safetensors", "rb").read()


def test_ranks_with_different_arguments_stop_with_a_clear_error(tmp_path):
    t0 = time.time()
    cmd = [MPIRUN, *MPI_FLAGS, "-np", "1", CLI, "train", *COMMON, "--batch", "5", "--out", str(tmp_path / "m"),
           ":", "-np", "1", CLI, "train", *COMMON, "--batch", "5", "--lr", "0.01", "--out", str(tmp_path / "m")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ENV)
    assert r.returncode != 0 and time.time() - t0 < 60
    assert "the ranks disagree on the options, data files, vocabularies and build: rank(s) 1 differ" in r.stderr


def test_a_killed_rank_stops_the_others_and_the_run_resumes_to_the_same_bytes(tmp_path):
    args = ["train", *BASE, "--max-steps", "60", "--eval-every", "20", "--save-every", "3", "--batch", "5"]
    mpi(2, *args, "--out", tmp_path / "whole")
    p = subprocess.Popen([MPIRUN, *MPI_FLAGS, "-np", "2", CLI, *args, "--out", str(tmp_path / "killed")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)
    state = tmp_path / "killed" / "train_state.safetensors"
    first = None
    for _ in range(3000):  # until the run has saved after its first updates
        if p.poll() is not None:
            break
        if state.exists():
            first = first or state.stat().st_mtime_ns
            if state.stat().st_mtime_ns != first:
                break
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 0.2))
    ranks = [int(x) for x in subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()]
    assert p.poll() is None and len(ranks) == 2, "the run ended before a rank could be killed"
    os.kill(random.choice(ranks), signal.SIGKILL)
    t0 = time.time()
    p.wait(timeout=90)
    assert time.time() - t0 < 60, "the other rank did not stop within 60 s"
    assert p.returncode != 0
    r = attend("train", "--resume", tmp_path / "killed", check=False)  # one process: refused
    assert r.returncode == 2 and "trained on 2 process(es); resume it with the same number (mpirun -np 2)" in r.stderr
    mpi(2, "train", "--resume", tmp_path / "killed")
    assert (open(tmp_path / "whole/model.safetensors", "rb").read() ==
            open(tmp_path / "killed/model.safetensors", "rb").read())


def test_a_model_that_samples_keeps_the_ranks_on_one_batch_order(tmp_path):
    # Hard attention draws from the RNG once per row: with uneven shards (200 examples in global
    # batches of 21: the last is split 3/4/4) the ranks' generators part after the first epoch.
    # The epoch's shuffle must still be rank 0's everywhere (checked by the trainer each epoch).
    r = mpi(3, "train", "--task", "dates", "--dates-train", "200", "--attention", "hard", "--batch", "7",
            "--threads", "1", "--max-steps", "40", "--eval-every", "20", "--out", tmp_path / "m")
    assert "disagree" not in r.stderr and r.stdout.count("trained 40 steps") == 1


def moments(d):
    return {k: v for k, v in weights(d / "train_state.safetensors").items() if k.startswith("adam.")}


@pytest.mark.parametrize("ranks,arch", [(2, "rnn"), (2, "transformer"), (3, "rnn")])
def test_a_sharded_optimizer_trains_as_the_replicated_one(tmp_path, ranks, arch):
    """--shard-optimizer (ZeRO stage 1): the same weights, losses and (gathered) Adam moments."""
    extra = TRANSFORMER if arch == "transformer" else []
    mpi(ranks, "train", *COMMON, *extra, "--batch", 6, "--out", tmp_path / "replicated")
    mpi(ranks, "train", *COMMON, *extra, "--batch", 6, "--shard-optimizer", "--out", tmp_path / "sharded")
    assert_same_training(tmp_path / "replicated", tmp_path / "sharded", tol=1e-5)
    a, b = moments(tmp_path / "replicated"), moments(tmp_path / "sharded")
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        assert np.allclose(a[k], b[k], rtol=1e-3, atol=1e-7 * max(1.0, float(np.max(np.abs(a[k]))))), k


def test_a_sharded_run_resumes_to_the_same_bytes(tmp_path):
    """Each rank takes its share of the saved moments back: stopped at 16 updates (an evaluation
    step: evaluations halve the learning rate when the dev score does not improve) and resumed to
    24 gives the bytes of 24 in one go."""
    sharded = ["--batch", 5, "--shard-optimizer"]
    mpi(2, "train", *COMMON, *sharded, "--out", tmp_path / "whole")
    mpi(2, "train", *BASE, "--max-steps", 16, "--eval-every", 8, *sharded, "--out", tmp_path / "part")
    mpi(2, "train", "--resume", tmp_path / "part", "--max-steps", 24)
    whole, part = weights(tmp_path / "whole/train_state.safetensors"), weights(tmp_path / "part/train_state.safetensors")
    assert whole.keys() == part.keys()
    for k in whole:  # the weights after 24 updates and the moments, bit for bit
        if k.startswith(("param.", "adam.")):
            assert whole[k].tobytes() == part[k].tobytes(), k


@pytest.mark.parametrize("top_k", [0, 3])
def test_distillation_with_the_teachers_cache_split_between_ranks(tmp_path, top_k):
    """--teacher under mpirun: each rank computes every second chunk of the teachers' cache and
    the ranks exchange them (whole rows, or with --teacher-top-k the kept probabilities and their
    ids). The run trains as one process with twice the batch does, and as the same ranks computing
    the teachers batch by batch (--teacher-cache-mb 0)."""
    attend("train", *COMMON, "--batch", 12, "--out", tmp_path / "teacher")
    distil = ["--teacher", tmp_path / "teacher", "--teacher-weight", "0.7", "--teacher-top-k", top_k]
    attend("train", *COMMON, *distil, "--batch", 12, "--out", tmp_path / "one")
    r = mpi(2, "train", *COMMON, *distil, "--batch", 6, "--out", tmp_path / "cached")
    assert "computed once" in r.stderr
    r = mpi(2, "train", *COMMON, *distil, "--batch", 6, "--teacher-cache-mb", 0,
            "--out", tmp_path / "uncached")
    assert "computed for every batch" in r.stderr
    # The teachers ran on chunks of 64 here and on the batches of 6 there, and the gradients are
    # summed in another order: results differ in rounding, and Adam turns a gradient that is rounding
    # noise into a step of the learning rate, so a single weight may differ by ~1e-4 of the largest
    # (measured: 3.8e-5 and 1.2e-4 in combine.weight, the next ~9e-6). Each tensor as a whole agrees
    # to a few 1e-6 of its norm; wrong rows or ids from the other rank would move it far more.
    assert_same_training(tmp_path / "cached", tmp_path / "uncached", tol=2e-5, per_tensor=True)
    assert_same_training(tmp_path / "one", tmp_path / "cached", tol=2e-5, per_tensor=True)
