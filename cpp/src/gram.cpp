#include "adapprox/gram.hpp"

#include <sstream>

namespace adapprox {

void validate(const GramHyper& h) {
  auto bad = [](const char* what, double x) {
    std::ostringstream os;
    os << what << ", got " << x;
    throw Error(ErrorKind::value, os.str());
  };
  if (!(h.lr >= 0)) bad("lr must be >= 0", h.lr);
  if (!(h.lr_decay >= 0)) bad("lr_decay must be >= 0", h.lr_decay);
  if (!(h.weight_decay >= 0)) bad("weight_decay must be >= 0", h.weight_decay);
  if (!(h.eps > 0 && h.eps < 1e300)) bad("eps must be > 0 and finite", h.eps);
}

int64_t flat_size(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

}  // namespace adapprox
