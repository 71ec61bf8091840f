"""Stateful attention mechanisms (static, local-m, local-p, location, coverage) against PyTorch.

The T query rows are T decoder steps. References are written here from the papers, step by
step: Luong et al. 2015 (local-m, local-p: eqs. 9-10), Chorowski et al. 2015 (location,
eqs. 8-9), Tu et al. 2016 / See et al. 2017 (coverage, eqs. 11-12). Same tolerances as
test_attention.py.
"""
import itertools
import math
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attend
from test_attention import FWD_TOL, GRAD_TOL, assert_close


def masked_softmax(s, mask):  # s [B, S], mask [B, S] bool
    w = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=1)
    return torch.where(mask.any(dim=1, keepdim=True), w, torch.zeros_like(w))


def score(q, k, kind, p, extra=None):  # q [B, Dq], k [B, S, Dk] -> [B, S]
    if kind == "dot":
        return torch.einsum("bd,bsd->bs", q, k)
    pre = (q @ p["Wq"]).unsqueeze(1) + k @ p["Wk"]
    if extra is not None:
        pre = pre + extra
    return torch.tanh(pre) @ p["va"]


def window(mask, centre, D):  # centre [B] floats -> mask & |s - centre| within the window
    S = mask.shape[1]
    s = torch.arange(S).unsqueeze(0)
    lo = torch.floor(centre).long().unsqueeze(1) - D
    hi = torch.ceil(centre).long().unsqueeze(1) + D
    return mask & (s >= lo) & (s <= hi)


def monotonic_alpha(pj, prev):  # Raffel et al. 2017, eq. 9, as the recurrence in j; prev None = all at 0
    B, S = pj.shape
    a_prev = prev if prev is not None else F.one_hot(torch.zeros(B, dtype=torch.long), S).float()
    cols, qj = [], None
    for j in range(S):
        qj = a_prev[:, j] if j == 0 else (1 - pj[:, j - 1]) * qj + a_prev[:, j]
        cols.append(pj[:, j] * qj)
    return torch.stack(cols, 1)


def reference(kind, q, k, v, mask, sc, p, D, summary=None, sigma=0.0, position_rate=1.0, chunk=4):
    B, T, _ = q.shape
    S = k.shape[1]
    lengths = mask.sum(dim=1)
    ctxs, ws = [], []
    prev = cov = None
    penalty = torch.zeros(())
    if kind == "static":
        w_static = masked_softmax(score(summary, k, sc, p), mask)
    for t in range(T):
        qt = q[:, t]
        if kind == "static":
            w = w_static
        elif kind == "local-m":
            centre = torch.minimum(torch.full((B,), position_rate * t), (lengths - 1).clamp(min=0).float())
            w = masked_softmax(score(qt, k, sc, p), window(mask, centre, D))
        elif kind == "local-p":
            pt = (lengths - 1).clamp(min=0).float() * torch.sigmoid(torch.tanh(qt @ p["Wp"]) @ p["vp"])
            w = masked_softmax(score(qt, k, sc, p), window(mask, pt.detach(), D))
            sd = sigma if sigma > 0 else D / 2
            w = w * torch.exp(-(torch.arange(S).unsqueeze(0) - pt.unsqueeze(1)) ** 2 / (2 * sd ** 2))
        elif kind == "location":
            extra = None
            if prev is not None:  # f = F * a_{t-1}, then U
                f = F.conv1d(prev.unsqueeze(1), p["F"].unsqueeze(1), padding=p["F"].shape[1] // 2)  # [B, K, S]
                extra = f.transpose(1, 2) @ p["U"]
            w = masked_softmax(score(qt, k, sc, p, extra), mask)
            prev = w
        elif kind == "monotonic":
            w = prev = monotonic_alpha(torch.sigmoid(score(qt, k, sc, p) + p["r"]) * mask, prev)
        elif kind == "mocha":  # Chiu & Raffel 2018: the monotonic head's alpha, spread over each chunk
            alpha = prev = monotonic_alpha(torch.sigmoid(score(qt, k, sc, p) + p["r"]) * mask, prev)
            cp = {"Wq": p.get("cWq"), "Wk": p.get("cWk"), "va": p.get("cva")}
            u = score(qt, k, sc, cp)  # chunk energies [B, S]
            beta = torch.zeros(B, S)
            for e in range(S):  # endpoint e: softmax of u over [e - chunk + 1, e] (its unmasked positions)
                lo = max(0, e - chunk + 1)
                w_chunk = masked_softmax(u[:, lo:e + 1], mask[:, lo:e + 1])
                beta = beta + F.pad(alpha[:, e:e + 1] * w_chunk, (lo, S - e - 1))
            w = beta
        elif kind == "multi-head":  # K additive heads, contexts concatenated and projected
            K = p["hWq"].shape[0]
            heads = [masked_softmax(torch.tanh((qt @ p["hWq"][h]).unsqueeze(1) + k @ p["hWk"][h]) @ p["hva"][h], mask)
                     for h in range(K)]
            ctx_heads = [torch.einsum("bs,bsd->bd", heads[h], v @ p["hWv"][h]) for h in range(K)]
            ctxs.append(torch.cat(ctx_heads, 1) @ p["hWo"])
            ws.append(sum(heads) / K)
            continue
        elif kind in ("forward", "forward-ta"):  # Zhang et al. 2018, eqs. 7-13
            y = masked_softmax(score(qt, k, sc, p), mask)
            a_prev = prev if prev is not None else F.one_hot(torch.zeros(B, dtype=torch.long), S).float()
            shifted = torch.cat([torch.zeros(B, 1), a_prev[:, :-1]], dim=1)
            if kind == "forward":
                mix = a_prev + shifted
            else:
                u = u_prev if prev is not None else torch.full((B, 1), 0.5)
                mix = (1 - u) * a_prev + u * shifted
            a_hat = mix * y
            tot = a_hat.sum(dim=1, keepdim=True)
            w = torch.where(tot > 0, a_hat / torch.where(tot > 0, tot, torch.ones_like(tot)), torch.zeros_like(a_hat))
            if kind == "forward-ta":
                u_prev = torch.sigmoid(torch.cat([torch.einsum("bs,bsd->bd", w, v), qt], 1) @ p["Wu"] + p["bu"]).unsqueeze(1)
            prev = w
        elif kind == "coverage":
            extra = None if cov is None else cov.unsqueeze(2) * p["wc"]
            w = masked_softmax(score(qt, k, sc, p, extra), mask)
            if cov is not None:
                penalty = penalty + torch.minimum(w, cov).sum()
            cov = w if cov is None else cov + w
        ctxs.append(torch.einsum("bs,bsd->bd", w, v))
        ws.append(w)
    return torch.stack(ctxs, 1), torch.stack(ws, 1), penalty


def own_options(kind, **candidates):
    """The settings among `candidates` that mechanism `kind` has (attend.mechanisms())."""
    info = next(m for m in attend.mechanisms() if m["name"] == kind)
    return {k: v for k, v in candidates.items() if k in {o["key"] for o in info["options"]}}


CASES = [(kind, sc, {}) for kind in ["static", "local-m", "local-p", "monotonic", "forward", "forward-ta"]
         for sc in ["dot", "additive"]] + \
        [("multi-head", "additive", {}), ("mocha", "dot", {"chunk": 3}), ("mocha", "additive", {"chunk": 2}), ("mocha", "additive", {"chunk": 5}),
         ("location", "additive", {}), ("coverage", "additive", {}),
         ("local-m", "dot", {"position_rate": 1.5}), ("local-m", "additive", {"position_rate": 0.6}),
         ("local-p", "additive", {"sigma": 0.8})]
SHAPES = [(2, 4, 7, 5, 3, 4), (3, 6, 9, 4, 2, 3), (1, 1, 1, 3, 2, 2), (2, 5, 12, 6, 4, 5)]  # B, T, S, D(q,k), Dv, A


@pytest.mark.parametrize("kind,sc,settings,shape,D",
                         [(k, s, st, sh, D) for (k, s, st), sh, D in itertools.product(CASES, SHAPES, [1, 2])])
def test_mechanism_forward_and_gradients_match_pytorch(kind, sc, settings, shape, D):
    B, T, S, Dm, Dv, A = shape
    if kind in ("forward-ta", "multi-head"):
        Dv = Dm  # the transition agent reads [context; query]; multi-head projects values like keys
    rng = np.random.default_rng(zlib.crc32(repr((kind, sc, settings, shape, D)).encode()))  # same data every run
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
    arrays = {"query": f32(B, T, Dm), "keys": f32(B, S, Dm), "values": f32(B, S, Dv)}
    params = {}
    if sc == "additive":
        params.update(Wq=f32(Dm, A) / np.float32(math.sqrt(Dm)), Wk=f32(Dm, A) / np.float32(math.sqrt(Dm)), va=f32(A))
    if kind == "local-p":
        params.update(Wp=f32(Dm, A), vp=f32(A))
    if kind == "location":
        params.update(F=f32(3, 5), U=f32(3, A))
    if kind == "coverage":
        params.update(wc=f32(A))
    if kind == "monotonic":
        params.update(r=np.array([-0.5], np.float32))
    if kind == "multi-head":  # K = 3 heads, their parameters stacked
        params = dict(hWq=f32(3, Dm, A) / np.float32(math.sqrt(Dm)), hWk=f32(3, Dm, A) / np.float32(math.sqrt(Dm)),
                      hva=f32(3, A), hWv=f32(3, Dm, Dm) / np.float32(math.sqrt(Dm)), hWo=f32(3 * Dm, Dm) / np.float32(3.0))
    if kind == "mocha":
        params.update(r=np.array([0.3], np.float32))
        if sc == "additive":
            params.update(cWq=f32(Dm, A) / np.float32(math.sqrt(Dm)), cWk=f32(Dm, A) / np.float32(math.sqrt(Dm)), cva=f32(A))
    if kind == "forward-ta":
        params.update(Wu=f32(2 * Dm), bu=f32(1))
    summary = f32(B, Dm) if kind == "static" else None
    lengths = rng.integers(1, S + 1, size=B)
    mask = np.arange(S)[None, :] < lengths[:, None]
    lam = 0.7 if kind == "coverage" else 0.0

    context, weights = attend.attention(arrays["query"], arrays["keys"], arrays["values"], attention=kind, score=sc,
                                        mask=mask, summary=summary, **own_options(kind, window=D, coverage_loss=lam),
                                        **settings, **params)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in {**arrays, **params}.items()}
    ts = torch.tensor(summary, requires_grad=True) if summary is not None else None
    ctx, w, penalty = reference(kind, t["query"], t["keys"], t["values"], torch.from_numpy(mask), sc, t, D, ts, **settings)
    assert_close(context, ctx.detach().numpy(), FWD_TOL, "context")
    assert_close(weights, w.detach().numpy(), FWD_TOL, "weights")
    if kind in ("local-m", "local-p"):  # nothing outside the window
        assert all((np.count_nonzero(weights[b, i]) <= 2 * D + 2) for b in range(B) for i in range(T))
    if kind == "static":
        assert np.array_equal(weights[:, :1].repeat(T, 1), weights)

    g_ctx, g_w = f32(*context.shape), f32(*weights.shape)
    ((ctx * torch.from_numpy(g_ctx)).sum() + (w * torch.from_numpy(g_w)).sum() + lam * penalty).backward()
    grads = attend.attention_backward(arrays["query"], arrays["keys"], arrays["values"], g_ctx, grad_weights=g_w,
                                      attention=kind, score=sc, mask=mask, summary=summary,
                                      **own_options(kind, window=D, coverage_loss=lam), **settings, **params)
    # An input a case never uses (static ignores the queries; with T = 1 location and coverage
    # never use their parameters) has no PyTorch gradient; attend reports zeros.
    grad = lambda x: (x.grad if x.grad is not None else torch.zeros_like(x)).numpy()
    want = {**{k: grad(v) for k, v in t.items()}, **({"summary": grad(ts)} if ts is not None else {})}
    assert set(grads) == set(want)
    for name, g in want.items():
        assert_close(grads[name], g, GRAD_TOL, f"d/d{name}")


def test_monotonic_hard_pointer_never_moves_back():
    rng = np.random.default_rng(3)
    q, k = rng.standard_normal((3, 10, 4)).astype(np.float32), rng.standard_normal((3, 8, 4)).astype(np.float32)
    mask = np.arange(8)[None, :] < np.array([8, 5, 1])[:, None]
    _, w = attend.attention(q, k, k, attention="monotonic", score="dot", mask=mask, r=np.zeros(1, np.float32), hard=True)
    assert set(np.unique(w)) <= {0.0, 1.0}
    for b in range(3):
        pos = [int(np.argmax(row)) for row in w[b] if row.any()]
        assert pos == sorted(pos) and all(p < mask[b].sum() for p in pos)


def test_missing_or_extra_parameters_are_named():
    q, k = np.ones((1, 2, 3), np.float32), np.ones((1, 4, 3), np.float32)
    with pytest.raises(ValueError, match="Wp"):
        attend.attention(q, k, k, attention="local-p", score="dot")
    with pytest.raises(ValueError, match="does not use wc"):
        attend.attention(q, k, k, attention="soft", score="dot", wc=np.ones(2, np.float32))
    with pytest.raises(ValueError, match="summary"):
        attend.attention(q, k, k, attention="static", score="dot")
    with pytest.raises(ValueError, match="additive"):
        attend.attention(q, k, k, attention="coverage", score="dot", wc=np.ones(2, np.float32))


def arrays_for(info, score, dims):
    """Every parameter array `info` (an attend.mechanisms() entry) may take, for `score`, of the sizes in dims."""
    def shape(text):
        return tuple(int(eval(d, {}, dims)) for d in text.split("(")[0].strip().strip("[]").split(","))
    rng = np.random.default_rng(5)
    arrays = {"Wq": "[Dq, A]", "Wk": "[Dk, A]", "va": "[A]"} if score == "additive" else {}
    arrays.update({kwarg: shape_text for kwarg, shape_text in info["arrays"]})
    return {k: (rng.standard_normal(shape(s)) * 0.3).astype(np.float32) for k, s in arrays.items()}


@pytest.mark.parametrize("info", attend.mechanisms(), ids=lambda m: m["name"])
def test_every_mechanism_takes_every_option_from_python(info):
    """Walks the registry: each mechanism, with each of its options given explicitly, through attend.attention."""
    dims = dict(Dq=4, Dk=4, Dv=4, A=3, K=2, R=3)
    score = "additive"
    q, k = f32_rng(2, 3, 4), f32_rng(2, 6, 4)
    kwargs = arrays_for(info, score, dims)
    sized = {"location_filters", "location_width", "attention_heads"}  # the arrays' shapes give these
    for o in info["options"]:
        if o["key"] not in sized:
            kwargs[o["key"]] = o["default"] if o["default"] in ("auto", "reinforce", "gumbel") else float(o["default"])
    if info["needs_summary"]:
        kwargs["summary"] = f32_rng(2, 4)
    for _ in range(len(kwargs)):  # the arrays the chosen score does not use (e.g. a general score's) are named
        try:
            context, weights = attend.attention(q, k, k, attention=info["name"], score=score, **kwargs)
            break
        except ValueError as e:
            unused = str(e).split("does not use ")[-1].split(" ")[0] if "does not use" in str(e) else None
            assert unused in kwargs, str(e)
            del kwargs[unused]
    assert context.shape == (2, 3, 4) and weights.shape == (2, 3, 6)
    assert np.isfinite(context).all() and np.isfinite(weights).all()
    for o in info["options"]:  # and an option it does not have is refused, naming who has it
        others = [m for m in attend.mechanisms() if m["name"] != info["name"] and o["key"] not in
                  {x["key"] for x in m["options"]}]
        if others:
            with pytest.raises(ValueError, match=o["key"] + " is an option of attention="):
                attend.attention(q, k, k, attention=others[0]["name"], score="dot", **{o["key"]: kwargs.get(o["key"], 1.0)})


def f32_rng(*shape):
    return np.random.default_rng(len(shape) * 7 + shape[-1]).standard_normal(shape).astype(np.float32)
