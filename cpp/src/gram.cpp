// The hyperparameters shared by FullMatrixAdagrad and AdaGram (gram_driver.hpp).
#include <limits>

#include "gram_driver.hpp"

namespace adapprox::gram {

std::vector<HyperParam> hyper_params(double eps) {
  const double inf = std::numeric_limits<double>::infinity();
  return {
      {"lr", 1e-1, 0, inf, false, true, false, "learning rate"},
      {"lr_decay", 0, 0, inf, false, true, false, "clr = lr / (1 + (t - 1) lr_decay)"},
      {"weight_decay", 0, 0, inf, false, true, false, "L2 penalty added to the gradient"},
      {"eps", eps, 0, 1e300, true, true, false, "G = eps I + sum g g^T"},
      {"maximize", 0, 0, 1, false, false, true, "maximize the objective"},
  };
}

GramHyper native(const Hyper& h) {
  return GramHyper{h.at("lr"), h.at("lr_decay"), h.at("weight_decay"), h.at("eps"), h.at("maximize") != 0};
}

}  // namespace adapprox::gram
