"""Hostile inputs from Python (docs/reliability.md): NaN never vanishes, zero sizes are empty results
or named errors, huge integers and arrays are refused clearly, paths are checked."""
import os
import pathlib
import subprocess

import numpy as np
import pytest

import attend

CLI = os.environ.get("ATTEND_CLI", os.path.join(os.path.dirname(__file__), "..", "..", "build", "attend"))


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("rel") / "model"
    subprocess.run([CLI, "train", "--task", "dates", "--dates-train", "300", "--hidden", "16", "--embedding", "8",
                    "--attention-dim", "8", "--epochs", "1", "--out", str(out)], check=True, capture_output=True)
    return out


def f32(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("attention", ["soft", "location", "monotonic", "forward"])
@pytest.mark.parametrize("normalizer", ["softmax", "sparsemax", "entmax15"])
def test_a_nan_query_gives_nan_weights_not_zeros(attention, normalizer):
    if attention in ("monotonic", "forward") and normalizer != "softmax":
        pytest.skip("these mechanisms have their own normalisation")
    q, k = f32(2, 1, 4), f32(2, 3, 4, seed=1)
    q[1, 0, 2] = np.nan
    kwargs = {}
    if attention == "location":
        kwargs = dict(score="additive", Wq=f32(4, 5), Wk=f32(4, 5), va=f32(5), F=f32(2, 3), U=f32(2, 5))
    if attention == "monotonic":
        kwargs = dict(r=np.array([-1.0], np.float32))
    context, weights = attend.attention(q, k, k, attention=attention, normalizer=normalizer, **kwargs)
    assert np.isnan(weights[1]).all() and np.isnan(context[1]).all()
    assert np.isfinite(weights[0]).all() and np.isfinite(context[0]).all()


@pytest.mark.parametrize("where", ["q", "k", "bias", "alibi"])
@pytest.mark.parametrize("reference", [False, True])
def test_nan_reaches_the_output_of_sdpa(where, reference):
    q, k, v = f32(1, 2, 3, 8), f32(1, 2, 40, 8, seed=1), f32(1, 2, 40, 8, seed=2)
    bias, slopes = f32(1, 2, 3, 40, seed=3), [0.5, 0.25]
    if where == "q":
        q[0, 1, 2, 3] = np.nan
    if where == "k":
        k[0, 1, 17, 0] = np.nan
    if where == "bias":
        bias[0, 1, 2, 30] = np.nan
    if where == "alibi":
        slopes[1] = float("nan")
    out, lse = attend.sdpa(q, k, v, bias=bias, alibi_slopes=slopes, reference=reference)
    assert np.isnan(out[0, 1, 2]).all() and np.isnan(lse[0, 1, 2])
    assert np.isfinite(out[0, 0]).all()
    # A fully masked row is zeros with lse = -inf: not to be confused with the above.
    out, lse = attend.sdpa(q[:, :, :1], k, v, key_lengths=[0], reference=reference)
    assert (out == 0).all() and (lse == -np.inf).all()


@pytest.mark.parametrize("reference", [False, True])
def test_a_window_of_int_max_is_no_window(reference):
    q, k, v = f32(1, 2, 5, 8), f32(1, 2, 7, 8, seed=1), f32(1, 2, 7, 8, seed=2)
    wide, _ = attend.sdpa(q, k, v, window_left=0, window_right=2**31 - 1, reference=reference)
    none, _ = attend.sdpa(q, k, v, window_left=0, reference=reference)
    np.testing.assert_array_equal(wide, none)
    wide, _ = attend.sdpa(q, k, v, window_left=2**31 - 1, causal=True, reference=reference)
    none, _ = attend.sdpa(q, k, v, causal=True, reference=reference)
    np.testing.assert_array_equal(wide, none)
    with pytest.raises(TypeError):  # beyond int: pybind11 refuses the conversion
        attend.sdpa(q, k, v, window_right=2**31)


def test_zero_sizes_are_empty_results_or_named_errors():
    context, weights = attend.attention(f32(0, 1, 4), f32(0, 3, 4), f32(0, 3, 2))
    assert context.shape == (0, 1, 2) and weights.shape == (0, 1, 3)
    context, weights = attend.attention(f32(1, 0, 4), f32(1, 3, 4), f32(1, 3, 2))
    assert context.shape == (1, 0, 2) and weights.shape == (1, 0, 3)
    grads = attend.attention_backward(f32(1, 0, 4), f32(1, 3, 4), f32(1, 3, 2), f32(1, 0, 2))
    assert grads["query"].shape == (1, 0, 4) and not grads["keys"].any()
    for q, k, v, name in [(f32(1, 1, 0), f32(1, 3, 0), f32(1, 3, 2), "Dq"), (f32(1, 1, 4), f32(1, 3, 4), f32(1, 3, 0), "Dv"),
                          (f32(1, 1, 4), f32(1, 0, 4), f32(1, 0, 2), "S")]:
        with pytest.raises(ValueError, match=name + r" \("):
            attend.attention(q, k, v)


def test_errors_name_the_actual_mismatch():
    with pytest.raises(ValueError, match=r"mask has shape \[2, 4\], expected \[1, 3\]"):
        attend.attention(f32(1, 1, 4), f32(1, 3, 4), f32(1, 3, 2), mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="could not convert string to float"):
        attend.attention("not numbers", f32(1, 3, 4), f32(1, 3, 2))


def test_an_array_too_large_to_copy_is_a_memory_error():
    huge = np.broadcast_to(np.float32(1), (1 << 14, 1 << 14, 1 << 10))  # 1 TiB as a view of one float
    with pytest.raises(MemoryError):
        attend.attention(huge, f32(1, 3, 1024), f32(1, 3, 2))


def test_threads_are_bounded():
    with pytest.raises(ValueError, match=r"threads must be between 1 and \d+"):
        attend.set_threads(100000)


def test_paths_accept_pathlike_and_refuse_nul(small_model):
    model = attend.Model.load(pathlib.Path(small_model))
    assert len(model.translate(["11/25/26"])) == 1
    with pytest.raises(ValueError, match="NUL"):
        attend.Model.load(str(small_model) + "\0/x")
    with pytest.raises(RuntimeError, match="not a directory"):
        attend.Model.load(pathlib.Path(small_model) / "config.json")


def test_an_input_the_model_cannot_take_is_an_error_naming_it(small_model):
    model = attend.Model.load(small_model)
    with pytest.raises(ValueError, match="input 1: invalid UTF-8|input 1: input of"):
        model.translate(["11/25/26", "x" * 5000])
    with pytest.raises(ValueError, match="beam must be in"):
        model.translate(["11/25/26"], beam=5000)
