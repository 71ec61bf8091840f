// attend decode: an ensemble of models decoding as one (OpenNMT's -model A B, Marian's --models,
// fairseq's --path A:B): at every step the next-token distribution is the mean of the members'
// probabilities. The members must share their vocabularies (Translator checks).
#pragma once

#include <memory>
#include <vector>

#include "attend/models/step_decoder.h"

namespace attend {

class EnsembleDecoder final : public StepDecoder {
 public:
  // members: one step decoder per model, over the same batch and rows per source.
  explicit EnsembleDecoder(std::vector<std::unique_ptr<StepDecoder>> members);
  // logits [N,V] = log(mean_m softmax(logits_m)); weights and trace are the first member's.
  NextTokenScores step(const std::vector<int>& prev) override;
  void reorder(const std::vector<int>& parents) override;
  bool keep(const std::vector<int>& rows) override;
  int max_steps() const override;

 private:
  std::vector<std::unique_ptr<StepDecoder>> members_;
};

}  // namespace attend
