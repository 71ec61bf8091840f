// The RNN decoder's step, fused, for the default mechanism (soft attention with softmax): the
// same products and kernels as Seq2Seq::step on buffers allocated once per batch. Internal to
// src/models.
#pragma once

#include <memory>

#include "attend/models/seq2seq.h"
#include "attend/ops/int8.h"

namespace attend {

// The fused step's products in int8 (Seq2Seq::quantize), each from the fp32 weight named alike
// in FusedWeights; a null one (no input feeding, no additive score) is not used.
struct FusedInt8 {
  std::shared_ptr<const Int8Weight> w_emb, w_feed, w_hh, w_q, w_cs, w_out;
};

// The weights the fused step reads, all [In, Out] row-major as the layers keep them.
struct FusedWeights {
  CellKind cell;
  ScoreKind score;
  int E, H, M, A, V;  // embedding, decoder state, memory, attention (additive), target vocabulary
  bool input_feeding;
  const float* emb;                 // target embeddings [V, E]
  const float* w_emb;               // W_ih rows [0, E): [E, G*H]
  const float* b_ih;                // [G*H]
  const float* w_feed;              // W_ih rows [E, E+H): [H, G*H] (input feeding only)
  const float* w_hh;                // [H, G*H]
  const float* b_hh;                // [G*H]
  const float* w_q;                 // additive score: [H, A] (null for the others)
  const float* v_a;                 // additive score: [A]
  const float* w_cs;                // combine rows [M, M+H): [H, H]
  const float* b_c;                 // [H], or null (Luong's layer has no bias)
  const float* w_out;               // [H, V]
  const float* b_out;               // [V]
  const FusedInt8* int8 = nullptr;  // quantized: the products in int8
};

// A step decoder over `enc` (already repeated for its rows) from `state`; `w` must outlive it.
std::unique_ptr<StepDecoder> fused_soft_decoder(const FusedWeights& w, const Seq2Seq::Encoded& enc,
                                                const Seq2Seq::DecoderState& state);

}  // namespace attend
