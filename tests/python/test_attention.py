"""attend.attention and attend.attention_backward against PyTorch, op by op.

The references are written here from the papers' formulas (Luong et al. 2015, eq. 8;
Bahdanau et al. 2015, eq. 6; Vaswani et al. 2017, eq. 1) and differentiated by
torch.autograd. Tolerances (fp32): forward max |error| <= 1e-5 x the output's scale, gradients
<= 1e-4 x the gradient's scale (scale = max(1, max |reference|)).
"""
import itertools
import zlib

import numpy as np
import pytest
import torch

import attend

FWD_TOL, GRAD_TOL = 1e-5, 1e-4


def sparsemax_ref(s):
    """Martins & Astudillo (2016), eq. 2, by sorting; -inf entries (masked) get zero."""
    z, _ = torch.sort(s, dim=-1, descending=True)
    finite = torch.isfinite(z)
    zf = torch.where(finite, z, torch.zeros_like(z))
    k = torch.arange(1, s.shape[-1] + 1, dtype=s.dtype)
    cums = zf.cumsum(-1)
    support = finite & (1 + k * zf > cums)
    kz = support.sum(-1, keepdim=True).clamp(min=1)
    tau = (cums.gather(-1, kz - 1) - 1) / kz
    return torch.clamp(s - tau, min=0)


def entmax15_ref(s):
    """Peters et al. (2019), alpha = 1.5, by sorting: p = max(s/2 - tau, 0)^2 with sum p = 1."""
    z = s / 2
    zs, _ = torch.sort(z, dim=-1, descending=True)
    finite = torch.isfinite(zs)
    zf = torch.where(finite, zs, torch.zeros_like(zs))
    k = torch.arange(1, s.shape[-1] + 1, dtype=s.dtype)
    mean = zf.cumsum(-1) / k
    ss = (zf ** 2).cumsum(-1) - k * mean ** 2
    delta = torch.clamp((1 - ss) / k, min=0)
    tau = mean - torch.sqrt(delta)
    support = finite & (tau <= zf)
    kz = support.sum(-1, keepdim=True).clamp(min=1)
    return torch.clamp(z - tau.gather(-1, kz - 1), min=0) ** 2


NORMALIZERS = {"softmax": lambda s: torch.softmax(s, dim=2), "sparsemax": sparsemax_ref, "entmax15": entmax15_ref}


def reference(q, k, v, mask, score, params, normalizer="softmax"):
    """normalizer over unmasked positions of score(q, k), then the weighted sum of v."""
    if score == "dot":
        s = q @ k.transpose(1, 2)
    elif score == "scaled-dot":
        s = q @ k.transpose(1, 2) / k.shape[2] ** 0.5
    elif score == "general":  # q^T W k
        s = q @ params["W"] @ k.transpose(1, 2)
    elif score == "additive":  # va^T tanh(q Wq + k Wk)
        s = torch.tanh((q @ params["Wq"]).unsqueeze(2) + (k @ params["Wk"]).unsqueeze(1)) @ params["va"]
    else:
        raise ValueError(score)
    if mask is not None:
        m = torch.from_numpy(mask).unsqueeze(1)  # [B, 1, S]
        s = s.masked_fill(~m, float("-inf"))
        w = NORMALIZERS[normalizer](s)
        w = torch.where(m.any(dim=2, keepdim=True), w, torch.zeros_like(w))  # fully masked row: zero weights
    else:
        w = NORMALIZERS[normalizer](s)
    return w @ v, w


def assert_close(got, want, tol, what):
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    err = float(np.abs(got - want).max()) if want.size else 0.0
    where = np.unravel_index(np.abs(got - want).argmax(), want.shape) if want.size else ()
    assert err <= tol * scale, f"{what}: max |error| {err:.3g} at {where} exceeds {tol} x scale {scale:.3g}"


def make_case(rng, B, T, S, Dq, Dk, Dv, A, score, masked):
    if score in ("dot", "scaled-dot"):
        Dk = Dq
    arrays = {
        "query": rng.standard_normal((B, T, Dq)).astype(np.float32),
        "keys": rng.standard_normal((B, S, Dk)).astype(np.float32),
        "values": rng.standard_normal((B, S, Dv)).astype(np.float32),
    }
    params = {}
    if score == "general":
        params["W"] = (rng.standard_normal((Dq, Dk)) / np.sqrt(Dq)).astype(np.float32)
    if score == "additive":
        params["Wq"] = (rng.standard_normal((Dq, A)) / np.sqrt(Dq)).astype(np.float32)
        params["Wk"] = (rng.standard_normal((Dk, A)) / np.sqrt(Dk)).astype(np.float32)
        params["va"] = rng.standard_normal(A).astype(np.float32)
    mask = None
    if masked:
        lengths = rng.integers(1, S + 1, size=B)
        mask = np.arange(S)[None, :] < lengths[:, None]
        if B > 1:
            mask[-1] = False  # one fully padded row
    return arrays, params, mask


SHAPES = [  # B, T, S, Dq, Dk, Dv, A
    (1, 1, 1, 1, 1, 1, 1),
    (2, 1, 5, 4, 3, 2, 3),
    (3, 4, 7, 5, 6, 3, 4),
    (2, 3, 1, 8, 8, 5, 6),
    (4, 2, 13, 17, 9, 11, 7),
]
SCORES = ["dot", "scaled-dot", "general", "additive"]


CASES = list(itertools.product(SCORES, SHAPES, [False, True], ["softmax"])) + \
    list(itertools.product(SCORES, SHAPES, [False, True], ["sparsemax", "entmax15"]))


@pytest.mark.parametrize("score,shape,masked,normalizer", CASES)
def test_forward_and_gradients_match_pytorch(score, shape, masked, normalizer):
    rng = np.random.default_rng(zlib.crc32(repr((score, shape, masked, normalizer)).encode()))  # same data every run
    arrays, params, mask = make_case(rng, *shape, score, masked)
    context, weights = attend.attention(arrays["query"], arrays["keys"], arrays["values"], score=score, mask=mask,
                                        normalizer=normalizer, **params)

    t = {k: torch.tensor(v, requires_grad=True) for k, v in {**arrays, **params}.items()}
    ref_ctx, ref_w = reference(t["query"], t["keys"], t["values"], mask, score, t, normalizer)
    assert_close(context, ref_ctx.detach().numpy(), FWD_TOL, "context")
    assert_close(weights, ref_w.detach().numpy(), FWD_TOL, "weights")
    assert not np.isnan(context).any() and not np.isnan(weights).any()

    g_ctx = rng.standard_normal(context.shape).astype(np.float32)
    g_w = rng.standard_normal(weights.shape).astype(np.float32)
    (ref_ctx * torch.from_numpy(g_ctx)).sum().add((ref_w * torch.from_numpy(g_w)).sum()).backward()
    grads = attend.attention_backward(arrays["query"], arrays["keys"], arrays["values"], g_ctx, grad_weights=g_w,
                                      score=score, normalizer=normalizer, mask=mask, **params)
    assert set(grads) == set(t)
    for name, tensor in t.items():
        assert_close(grads[name], tensor.grad.numpy(), GRAD_TOL, f"d/d{name}")


def test_the_comparison_catches_a_wrong_kernel():
    """A kernel that forgot the 1/sqrt(Dk) scale must fail the same comparison."""
    rng = np.random.default_rng(7)
    arrays, params, mask = make_case(rng, 2, 3, 6, 8, 8, 4, 4, "scaled-dot", False)
    wrong, _ = attend.attention(arrays["query"], arrays["keys"], arrays["values"], score="dot", mask=mask)
    t = {k: torch.tensor(v) for k, v in arrays.items()}
    ref, _ = reference(t["query"], t["keys"], t["values"], mask, "scaled-dot", {})
    with pytest.raises(AssertionError, match="max \\|error\\|"):
        assert_close(wrong, ref.numpy(), FWD_TOL, "context")


def test_return_weights_false_and_errors():
    q = np.ones((1, 2, 3), np.float32)
    k = np.ones((1, 4, 3), np.float32)
    v = np.ones((1, 4, 5), np.float32)
    assert attend.attention(q, k, v, return_weights=False).shape == (1, 2, 5)
    with pytest.raises(ValueError, match="cosine"):
        attend.attention(q, k, v, score="cosine")
    with pytest.raises(ValueError, match="Dq=3"):
        attend.attention(q, np.ones((1, 4, 2), np.float32), v, score="dot")
    with pytest.raises(ValueError, match="mask"):
        attend.attention(q, k, v, mask=np.ones((1, 3), bool))
    with pytest.raises(ValueError, match="W"):
        attend.attention(q, k, v, score="general")
    with pytest.raises(ValueError, match="soft, static, hard"):
        attend.attention(q, k, v, attention="nonsense")


def test_hard_attention_is_the_one_hot_argmax_of_soft():
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 4, 6), dtype=np.float32)
    k = rng.standard_normal((2, 7, 6), dtype=np.float32)
    mask = np.array([[1] * 7, [1] * 5 + [0] * 2], bool)
    ctx, w = attend.attention(q, k, k, attention="hard", mask=mask)
    _, soft = attend.attention(q, k, k, attention="soft", mask=mask)
    assert ((w == 0) | (w == 1)).all() and (w.sum(-1) == 1).all()
    np.testing.assert_array_equal(w.argmax(-1), soft.argmax(-1))
    np.testing.assert_allclose(ctx, np.take_along_axis(k, soft.argmax(-1)[..., None], 1), rtol=0, atol=1e-6)


def test_docstrings_have_working_examples():
    import doctest

    assert ">>>" in attend.attention.__doc__ and ">>>" in attend.attention_backward.__doc__
    failures, _ = doctest.testmod(attend, verbose=False)
    assert failures == 0
