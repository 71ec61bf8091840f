// Rows of a batch being decoded, for both step decoders of the RNN encoder-decoder: beam
// search continues each row from its parent's. Internal to src/models.
#pragma once

#include <vector>

#include "attend/models/seq2seq.h"

namespace attend {

// The decoder state of rows `rows`: every slot the mechanism keeps, the recurrent state and
// the input feed.
Seq2Seq::DecoderState gather_state(const Seq2Seq::DecoderState& s, const std::vector<int>& rows);
// The encoding with every source repeated for its rows.
Seq2Seq::Encoded repeat_rows(const Seq2Seq::Encoded& enc, const std::vector<int>& rows);

}  // namespace attend
