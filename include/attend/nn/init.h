// attend nn: weight initialisation.
#pragma once

#include "attend/random.h"
#include "attend/tensor.h"

namespace attend::init {

// U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010). w is [fan_in, fan_out].
void glorot_uniform(Tensor& w, Rng& rng);
// U(-a, a).
void uniform(Tensor& w, float a, Rng& rng);
// N(0, std^2).
void normal(Tensor& w, float std, Rng& rng);
// w [H, G*H]: each of the G square blocks w[:, g*H:(g+1)*H] an independent random orthogonal
// matrix (Saxe et al. 2014), by modified Gram-Schmidt on a Gaussian matrix.
void orthogonal_blocks(Tensor& w, Rng& rng);

// While one exists (on this thread), the initialisers above leave the weights as they are and
// draw nothing: for a model about to receive every weight from a file (Translator::load), whose
// random initialisation would be thrown away. It took half of `attend translate`'s time for
// one input (the orthogonal recurrent weights).
class SkipScope {
 public:
  SkipScope();
  ~SkipScope();
  SkipScope(const SkipScope&) = delete;
  SkipScope& operator=(const SkipScope&) = delete;

 private:
  bool previous_;
};

}  // namespace attend::init
