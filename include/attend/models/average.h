// attend models: checkpoint averaging (Vaswani et al. 2017; Marian's and fairseq's
// average_checkpoints): the element-wise mean of the weights of several checkpoints of one run.
#pragma once

#include <string>
#include <vector>

namespace attend {

// Loads every model directory in `dirs` (each validated as Translator::load does), checks that
// they are checkpoints of one model (the same settings, tokenizers, vocabularies, subword models
// and weight shapes; otherwise std::runtime_error naming the directory and what differs), and
// saves to `out` (as one unit) the first one's settings with the mean of all their weights,
// accumulated in double precision. The caller holds out's DirectoryLock.
void average_checkpoints(const std::vector<std::string>& dirs, const std::string& out);

}  // namespace attend
