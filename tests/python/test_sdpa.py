"""attend.sdpa (the fused kernel) against PyTorch's attention written plainly, forward and
gradients, for every mask and option PyTorch can express with a boolean mask or an additive bias.

Tolerances: outputs within 1e-5 and gradients within 1e-4 of PyTorch, relative to the largest
magnitude of PyTorch's result (float32 both sides; PyTorch in float64 here, so the difference is
attend's error alone)."""
import math

import numpy as np
import pytest
import torch

import attend

rng = np.random.default_rng(7)


def torch_sdpa(q, k, v, bias=None, scale=None, key_lengths=None, causal=False, bottom_right=False, window=(-1, -1),
               alibi=None, softcap=0.0):
    """Reference in float64: the same definitions as include/attend/ops/sdpa.h."""
    B, H, T, D = q.shape
    S, Hkv = k.shape[2], k.shape[1]
    G = H // Hkv
    q, k, v = (torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (q, k, v))
    kk, vv = k.repeat_interleave(G, dim=1), v.repeat_interleave(G, dim=1)
    x = q @ kk.transpose(-1, -2) * (scale or 1 / math.sqrt(D))
    if softcap:
        x = softcap * torch.tanh(x / softcap)
    b = None
    if bias is not None:
        b = torch.tensor(bias, dtype=torch.float64, requires_grad=True)
        x = x + b
    L = torch.tensor(key_lengths if key_lengths is not None else [S] * B)
    t = torch.arange(T).view(1, T, 1)
    s = torch.arange(S).view(1, 1, S)
    diag = t + (L.view(B, 1, 1) - T if bottom_right else 0)
    if alibi is not None:
        x = x - torch.tensor(alibi, dtype=torch.float64).view(1, H, 1, 1) * (diag - s).abs().unsqueeze(1)
    allowed = s < L.view(B, 1, 1)
    if causal:
        allowed = allowed & (s <= diag)
    if window[0] >= 0:
        allowed = allowed & (s >= diag - window[0])
    if window[1] >= 0:
        allowed = allowed & (s <= diag + window[1])
    x = x.masked_fill(~allowed.unsqueeze(1), float("-inf"))
    p = torch.softmax(x, -1).nan_to_num(0.0)  # a row with no allowed key: zeros
    return (p @ vv), (q, k, v, b)


CASES = [
    dict(),
    dict(causal=True),
    dict(causal=True, bottom_right=True, key_lengths=[90, 33]),
    dict(window=(7, 2)),
    dict(softcap=4.0, alibi=[0.5, 0.25, 0.125, 0.0625], scale=0.3),
    dict(bias="full", causal=True),
    dict(bias="broadcast", key_lengths=[0, 50]),
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("heads", [(4, 4), (4, 2), (4, 1)])
def test_sdpa_matches_pytorch(case, heads):
    opt = dict(CASES[case])
    B, (H, Hkv), T, S, D = 2, heads, 70, 90, 32
    q = rng.standard_normal((B, H, T, D), dtype=np.float32)
    k = rng.standard_normal((B, Hkv, S, D), dtype=np.float32)
    v = rng.standard_normal((B, Hkv, S, D), dtype=np.float32)
    g = rng.standard_normal((B, H, T, D), dtype=np.float32)
    bias = None
    if opt.get("bias") == "full":
        bias = rng.standard_normal((B, H, T, S), dtype=np.float32)
    elif opt.get("bias") == "broadcast":
        bias = rng.standard_normal((1, H, T, S), dtype=np.float32)
    kw = dict(scale=opt.get("scale", 0.0), causal=opt.get("causal", False), bottom_right=opt.get("bottom_right", False),
              window_left=opt.get("window", (-1, -1))[0], window_right=opt.get("window", (-1, -1))[1],
              softcap=opt.get("softcap", 0.0))
    if "key_lengths" in opt:
        kw["key_lengths"] = opt["key_lengths"]
    if "alibi" in opt:
        kw["alibi_slopes"] = opt["alibi"]
    out, lse = attend.sdpa(q, k, v, bias=bias, **kw)
    expect, leaves = torch_sdpa(q, k, v, bias=bias, scale=opt.get("scale"), key_lengths=opt.get("key_lengths"),
                                causal=opt.get("causal", False), bottom_right=opt.get("bottom_right", False),
                                window=opt.get("window", (-1, -1)), alibi=opt.get("alibi"), softcap=opt.get("softcap", 0.0))
    e = expect.detach().numpy()
    assert np.abs(out - e).max() <= 1e-5 * max(np.abs(e).max(), 1.0), np.abs(out - e).max()
    assert np.isfinite(out).all()
    (expect * torch.tensor(g, dtype=torch.float64)).sum().backward()
    grads = attend.sdpa_backward(q, k, v, g, bias=bias, **kw)
    for name, leaf in zip(("q", "k", "v", "bias"), leaves):
        if leaf is None:
            continue
        want = leaf.grad.numpy()
        got = grads[name]
        assert got.shape == want.shape, name
        assert np.abs(got - want).max() <= 1e-4 * max(np.abs(want).max(), 1.0), (name, np.abs(got - want).max())


def test_sdpa_bad_input_is_a_clear_error():
    q = np.zeros((1, 3, 4, 8), np.float32)
    k = np.zeros((1, 2, 5, 8), np.float32)
    with pytest.raises(ValueError, match="3 query heads are not a multiple of 2"):
        attend.sdpa(q, k, k)
