// attend nn: GRU and LSTM cells and (bi)directional recurrent layers over padded batches.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "attend/nn/module.h"
#include "attend/ops/int8.h"
#include "attend/random.h"

namespace attend {

enum class CellKind { kGru, kLstm };
CellKind parse_cell(const std::string& name);  // "gru" | "lstm"; throws otherwise
std::string to_string(CellKind kind);

struct RnnState {
  Var h;  // [B,H]
  Var c;  // [B,H] LSTM cell state; undefined for GRU
};

// One recurrent cell: w_ih [In, G*H] (Glorot), w_hh [H, G*H] (orthogonal blocks), biases [G*H],
// G = 3 (GRU) or 4 (LSTM; forget-gate bias initialised to 1, Jozefowicz et al. 2015).
class RnnCell : public Module {
 public:
  RnnCell() = default;
  RnnCell(CellKind kind, int input, int hidden, Rng& rng);
  // x [N, In] -> gi [N, G*H]: the input half of the gates, for many steps at once.
  Var project_input(const Var& x) const;
  // The same for a block of the input features: x [N, rows] times rows [first, first+rows) of
  // w_ih, plus b_ih when with_bias. Summing the blocks' results gives project_input.
  Var project_input_rows(const Var& x, int64_t first, int64_t rows, bool with_bias) const;
  // One step from precomputed gi [B, G*H]; rows with valid[b] == 0 keep their state.
  RnnState step(const Var& gi, const RnnState& state, const Tensor& valid = Tensor()) const;
  RnnState zero_state(int batch) const;
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;
  // project_input(_rows), step and the inference loop's recurrent product in int8 whenever no
  // tape records.
  void quantize() override { quantize_in_blocks({}); }
  // The same with w_ih in blocks of its rows (Int8Blocks), each read by project_input_rows; {} is one.
  void quantize_in_blocks(std::vector<int> bounds);
  void release_fp32() override;                                                    // w_ih and w_hh, once quantized
  const std::shared_ptr<const Int8Weight>& w_hh_int8() const { return hh_int8_; }  // after quantize(), else null
  // After quantize(): the block of w_ih's rows [first, first + rows), else null.
  std::shared_ptr<const Int8Weight> w_ih_int8(int first, int rows) const { return ih_int8_.block(first, rows); }
  CellKind kind() const { return kind_; }
  int hidden() const { return hidden_; }
  int gates() const { return kind_ == CellKind::kGru ? 3 : 4; }
  const Var& w_ih() const { return w_ih_; }  // undefined after release_fp32(), as w_hh
  const Var& b_ih() const { return b_ih_; }
  const Var& w_hh() const { return w_hh_; }
  const Var& b_hh() const { return b_hh_; }

 private:
  // step() without a tape, from the int8 recurrent weights.
  RnnState step_int8(const Tensor& gi, const RnnState& state, const Tensor& valid) const;
  [[noreturn]] void throw_released() const;
  CellKind kind_ = CellKind::kGru;
  int hidden_ = 0;
  Var w_ih_, b_ih_, w_hh_, b_hh_;
  Int8Blocks ih_int8_;                         // after quantize()
  std::shared_ptr<const Int8Weight> hh_int8_;  // after quantize()
};

// A recurrent layer over a padded batch, uni- or bidirectional.
class Rnn : public Module {
 public:
  struct Output {
    Var outputs;                 // [S, B, dirs*H], time-major: forward and backward states at each position
    std::vector<RnnState> last;  // per direction: forward after each sequence's last token,
                                 // backward after its first token
  };
  Rnn() = default;
  Rnn(CellKind kind, int input, int hidden, bool bidirectional, Rng& rng);
  // x_tm [S*B, In] in time-major order (row t*B + b is token t of sequence b); lengths[b] >= 1.
  Output forward(const Var& x_tm, const std::vector<int>& lengths, int S) const;
  // The same from inputs already projected by each direction's cell: gi_tm[d] [S*B, G*H].
  Output forward_projected(const std::vector<Var>& gi_tm, const std::vector<int>& lengths, int S) const;
  int directions() const { return bidirectional_ ? 2 : 1; }
  void quantize() override { fwd_.quantize(), bwd_.quantize(); }
  void release_fp32() override { fwd_.release_fp32(), bwd_.release_fp32(); }
  const RnnCell& cell(int direction) const { return direction == 0 ? fwd_ : bwd_; }
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;
  int output_dim() const { return fwd_.hidden() * (bidirectional_ ? 2 : 1); }

 private:
  // forward_projected when nothing is recorded (decoding, evaluation).
  Output forward_inference(const std::vector<Var>& gi_tm, const std::vector<int>& lengths, int S) const;
  RnnCell fwd_, bwd_;
  bool bidirectional_ = false;
};

}  // namespace attend
