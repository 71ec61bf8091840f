// attend ops: reshaping, joining and cutting tensors.
#pragma once

#include <vector>

#include "attend/autograd/variable.h"

namespace attend {

// Same values, new shape (same element count). Shares storage with x.
Var reshape(const Var& x, const Shape& shape);
// xs all equal except along `dim` -> joined along `dim`.
Var concat(const std::vector<Var>& xs, int dim);
// x[..., start:start+length, ...] along `dim` (a copy).
Var slice(const Var& x, int dim, int64_t start, int64_t length);
// xs all of shape [d0..dk] -> a new dimension inserted at `dim`, e.g. T x [B,H] -> [B,T,H] for dim 1.
Var stack(const std::vector<Var>& xs, int dim);
// x[i] for x [N, ...] -> [...]; a view (no copy). Backward adds into the i-th block of dx.
Var select(const Var& x, int64_t i);
// x[start:start+length] along dim 0 -> [length, ...]; a view (no copy), e.g. a block of weight rows.
Var narrow(const Var& x, int64_t start, int64_t length);

// [A, B, ...] -> [B, A, ...] (a copy), e.g. time-major [S,B,H] to batch-major [B,S,H].
Var transpose01(const Var& x);
// [A, B, C, D] -> [A, C, B, D] (a copy), e.g. heads: [B,T,H,D] <-> [B,H,T,D].
Var transpose12(const Var& x);
// Heads from a block of columns (a copy): x [B,T,W] -> [B,H,T,D] with
// out[b,h,t,d] = x[b,t,first + h*D + d], e.g. the keys of a joined Q|K|V projection [B,T,3C].
Var heads_from_columns(const Var& x, int64_t first, int64_t heads, int64_t head_dim);

// Rows of a tensor picked by index along dim 0 (no gradient): out[j] = x[index[j]].
Tensor gather_rows(const Tensor& x, const std::vector<int>& index);

}  // namespace attend
