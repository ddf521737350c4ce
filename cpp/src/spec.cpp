// Spec strings: NAME [":" KEY "=" NUMBER ("," KEY "=" NUMBER)*], e.g. "adam:lr=1e-3,beta1=0.9".
#include <cctype>
#include <charconv>
#include <clocale>
#include <cmath>
#include <cstdlib>
#include <locale.h>
#include <sstream>

#include "adapprox/optimizer.hpp"

namespace adapprox {
namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool valid_word(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

[[noreturn]] void bad(const std::string& what) { throw Error(ErrorKind::spec, what); }

// Whether a decimal that from_chars found out of range is too small rather than too large:
// its exponent (after 'e') is negative, or it has no exponent and starts "0." or "-0.".
bool underflows(const std::string& v) {
  const size_t e = v.find_first_of("eE");
  if (e != std::string::npos) return e + 1 < v.size() && v[e + 1] == '-';
  const size_t start = !v.empty() && v[0] == '-' ? 1 : 0;
  return v.compare(start, 2, "0.") == 0;
}

}  // namespace

Spec parse_spec(const std::string& text) {
  if (text.size() > 4096) bad("spec is longer than 4096 characters");
  if (text.find('\0') != std::string::npos) bad("spec contains a NUL character");
  Spec spec;
  const size_t colon = text.find(':');
  spec.name = trim(text.substr(0, colon));
  if (!valid_word(spec.name)) bad("spec must start with an optimizer name (letters, digits, _), got '" + text + "'");
  if (colon == std::string::npos) return spec;
  std::stringstream items(text.substr(colon + 1));
  std::string item;
  while (std::getline(items, item, ',')) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos) bad("spec item '" + trim(item) + "' is not KEY=VALUE");
    const std::string key = trim(item.substr(0, eq)), value = trim(item.substr(eq + 1));
    if (!valid_word(key)) bad("spec key '" + key + "' is not a name");
    if (spec.values.count(key)) bad("spec key '" + key + "' is given twice");
    if (value == "true" || value == "false") {
      spec.values[key] = value == "true";
      continue;
    }
    if (key == "state_precision" && (value == "fp32" || value == "bf16" || value == "8bit")) {  // its names
      spec.values[key] = value == "fp32" ? 0 : value == "bf16" ? 1 : 2;
      continue;
    }
    // std::from_chars: the same digits mean the same number under every locale (strtod reads
    // "0,001" under de_DE); decimal or scientific notation only (no hex, no leading '+').
    double x = 0;
    const char* first = value.data();
    const char* last = first + value.size();
    auto [end, ec] = std::from_chars(first, last, x, std::chars_format::general);
    if (ec == std::errc::result_out_of_range && end == last && underflows(value)) {
      // a tiny decimal (1e-400, 4e-320): its nearest double, 0 or subnormal, read in the C locale
      static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(0));
      x = strtod_l(value.c_str(), nullptr, c_locale);
      ec = std::errc();
    }
    if (value.empty() || ec != std::errc() || end != last || !std::isfinite(x))
      bad("spec value of '" + key + "' must be a finite decimal number, got '" + value + "'");
    spec.values[key] = x;
  }
  if (!text.empty() && text.back() == ',') bad("spec ends with a stray ','");
  return spec;
}

std::string format_spec(const std::string& name, const Hyper& values) {
  std::string out = name;
  char sep = ':';
  for (const auto& [k, v] : values) {
    char num[64];
    const auto res = std::to_chars(num, num + sizeof num, v);  // shortest text that reads back as v
    out += sep + k + '=' + std::string(num, res.ptr);
    sep = ',';
  }
  return out;
}

}  // namespace adapprox
