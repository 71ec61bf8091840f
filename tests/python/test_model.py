"""attend.Model from Python, and the golden end-to-end check against PyTorch."""
import os
import subprocess

import numpy as np
import pytest

import attend
import golden_check

CLI = os.environ.get("ATTEND_CLI", os.path.join(os.path.dirname(__file__), "..", "..", "build", "attend"))


@pytest.fixture(scope="module")
def dates_model(tmp_path_factory):
    """The default dates model (bi-GRU encoder, GRU decoder, additive attention), briefly trained."""
    out = tmp_path_factory.mktemp("dates") / "model"
    subprocess.run([CLI, "train", "--task", "dates", "--dates-train", "4000", "--epochs", "2", "--out", str(out)],
                   check=True, capture_output=True)
    return str(out)


def test_golden_check_default_dates_model(dates_model):
    pairs = [line.rstrip("\n").split("\t") for line in open(os.path.join(dates_model, "test.tsv"))][:48]
    diff, loss, ref = golden_check.check(dates_model, pairs, label_smoothing=0.1)
    assert diff <= 1e-4, f"logits differ by {diff}"
    assert abs(loss - ref) <= 1e-5 * max(1.0, abs(ref)), f"loss {loss} vs PyTorch {ref}"


@pytest.mark.parametrize("extra", [["--cell", "lstm", "--score", "general", "--encoder-layers", "2"],
                                   ["--score", "dot", "--no-input-feeding"]])
def test_golden_check_other_architectures(tmp_path, extra):
    out = tmp_path / "model"
    subprocess.run([CLI, "train", "--dates-train", "600", "--epochs", "1", "--hidden", "32", "--embedding", "16",
                    "--out", str(out), *extra], check=True, capture_output=True)
    pairs = [line.rstrip("\n").split("\t") for line in open(out / "test.tsv")][:16]
    diff, loss, ref = golden_check.check(str(out), pairs, label_smoothing=0.0)
    assert diff <= 1e-4 and abs(loss - ref) <= 1e-5 * max(1.0, abs(ref)), (diff, loss, ref)


def test_local_p_alignment_has_its_predicted_centres(tmp_path):
    """alignment() also returns what the mechanism decided per row: local-p's centre p_t, whose
    window [p_t - D, p_t + D] holds all of that row's weight."""
    out = tmp_path / "model"
    subprocess.run([CLI, "train", "--dates-train", "600", "--epochs", "1", "--hidden", "32", "--embedding", "16",
                    "--attention", "local-p", "--window", "2", "--out", str(out)], check=True, capture_output=True)
    a = attend.Model.load(str(out)).alignment("25.11.2026", beam=3)
    centre = a["trace"]["predicted centre p_t"]
    assert centre.shape == (len(a["target_tokens"]),)
    assert ((centre >= 0) & (centre <= len(a["source_tokens"]) - 1)).all()
    for row, c in zip(a["weights"], centre):
        inside = [s for s in range(len(row)) if np.floor(c) - 2 <= s <= np.ceil(c) + 2]
        assert row[inside].sum() == pytest.approx(row.sum(), abs=1e-6)


@pytest.mark.parametrize("extra", [[], ["--post-norm", "--tie-embeddings"]])
def test_golden_check_transformer(tmp_path, extra):
    """The Transformer's teacher-forced logits equal the same network written in PyTorch."""
    out = tmp_path / "model"
    subprocess.run([CLI, "train", "--model", "transformer", "--dates-train", "600", "--epochs", "1", "--dim", "32",
                    "--heads", "4", "--ffn", "48", "--layers", "2", "--out", str(out), *extra],
                   check=True, capture_output=True)
    pairs = [line.rstrip("\n").split("\t") for line in open(out / "test.tsv")][:16]
    diff, loss, ref = golden_check.check(str(out), pairs, label_smoothing=0.1)
    assert diff <= 1e-4 and abs(loss - ref) <= 1e-5 * max(1.0, abs(ref)), (diff, loss, ref)
    model = attend.Model.load(str(out))
    assert model.architecture == "transformer"
    a = model.alignment("25.11.2026", beam=2)  # (an output cut at the length limit has no </s> row)
    assert a["maps"].shape == (8, len(a["target_tokens"]), len(a["source_tokens"]))
    assert a["map_names"][0] == "layer 1 head 1" and a["map_names"][-1] == "layer 2 head 4"
    np.testing.assert_allclose(a["maps"].mean(axis=0), a["weights"], atol=1e-6)
    np.testing.assert_allclose(a["maps"].sum(axis=2), 1.0, atol=1e-5)


def test_model_translate_align_and_errors(dates_model):
    model = attend.Model.load(dates_model)
    out = model.translate(["2026-11-25", "25.11.2026"], beam=3)
    assert len(out) == 2 and all(isinstance(s, str) for s in out)
    w = model.align("25.11.2026")
    assert w.dtype == np.float32 and w.shape[1] == len("25.11.2026")
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-5)
    a = model.alignment("25.11.2026")
    assert a["target_tokens"][-1] == "</s>" and a["weights"].shape == (len(a["target_tokens"]), len(a["source_tokens"]))
    assert "trace" not in a  # soft attention records nothing beside its weights
    assert "src_embedding.weight" in model.parameters()
    with pytest.raises(RuntimeError, match="no-such-dir"):
        attend.Model.load("no-such-dir")
    attend.set_threads(2)
    assert model.translate(["2026-11-25", "25.11.2026"], beam=3) == out  # the same with two threads
    attend.set_threads(1)
    with pytest.raises(ValueError, match="got 0"):
        attend.set_threads(0)


def test_translate_batches_and_input_order(dates_model):
    """Outputs come back in input order whatever the batch size (inputs are batched by length)."""
    model = attend.Model.load(dates_model)
    texts = ["25 November 2026", "11/25/26", "the 3rd of march, 1999", "2026-11-25", "Nov 25 2026", "1.2.03"]
    one = model.translate(texts, beam=1, batch=1)
    assert model.translate(texts, beam=1, batch=64) == one
    assert model.translate(texts, beam=1, batch=4) == one
    assert [model.translate([t], beam=1)[0] for t in texts] == one
    with pytest.raises(ValueError, match="batch must be >= 1, got 0"):
        model.translate(texts, batch=0)


def test_int8_model_translates_like_fp32(dates_model):
    """precision="int8" quantizes the products when loading; the outputs of a trained model barely move."""
    texts = ["25 November 2026", "11/25/26", "the 3rd of march, 1999", "2026-11-25", "Nov 25 2026", "1.2.03"]
    fp = attend.Model.load(dates_model)
    q = attend.Model.load(dates_model, precision="int8")
    assert (fp.precision, q.precision) == ("fp32", "int8")
    same = sum(a == b for a, b in zip(fp.translate(texts, beam=1), q.translate(texts, beam=1)))
    assert same >= len(texts) - 1
    assert q.translate(texts, beam=3, batch=1) == q.translate(texts, beam=3, batch=64)
    with pytest.raises(ValueError, match="precision 'fp16': expected fp32 or int8"):
        attend.Model.load(dates_model, precision="fp16")


def test_ensemble_of_a_model_with_itself_translates_as_the_model(dates_model, tmp_path):
    texts = ["25 November 2026", "11/25/26", "the 3rd of march, 1999"]
    alone = attend.Model.load(dates_model)
    twice = attend.Model.load(dates_model, ensemble=[dates_model])
    assert twice.translate(texts, beam=3) == alone.translate(texts, beam=3)
    other = tmp_path / "other"
    subprocess.run([CLI, "train", "--task", "dates", "--dates-train", "20", "--max-steps", "5", "--out", str(other)],
                   check=True, capture_output=True)
    with pytest.raises(ValueError, match="model 2 of the ensemble has another source vocabulary"):
        attend.Model.load(dates_model, ensemble=[str(other)])


def test_quantized_directory_loads_in_int8(dates_model, tmp_path):
    """attend quantize's output decodes in int8 by default; precision="fp32" dequantizes."""
    out = tmp_path / "q"
    subprocess.run([os.environ["ATTEND_CLI"], "quantize", "--model", dates_model, "--out", str(out)], check=True,
                   capture_output=True)
    q = attend.Model.load(str(out))
    assert q.precision == "int8" and attend.Model.load(str(out), precision="fp32").precision == "fp32"
    assert q.translate(["2026-11-25"], beam=1) == attend.Model.load(str(out), precision="int8").translate(["2026-11-25"], beam=1)
