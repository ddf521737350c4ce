// A minimal test harness: CHECK records failures with file:line; main returns non-zero on any.
#pragma once
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace check {
inline int& failures() { static int n = 0; return n; }
inline std::vector<std::pair<std::string, std::function<void()>>>& registry() {
  static std::vector<std::pair<std::string, std::function<void()>>> r;
  return r;
}
struct Register {
  Register(const char* name, std::function<void()> fn) { registry().emplace_back(name, std::move(fn)); }
};
inline int run_all() {
  int passed = 0, failed = 0;
  for (auto& [name, fn] : registry()) {
    const int before = failures();
    try {
      fn();
    } catch (const std::exception& e) {
      std::printf("  %s: unexpected exception: %s\n", name.c_str(), e.what());
      ++failures();
    }
    (failures() == before ? passed : failed) += 1;
    std::printf("%s %s\n", failures() == before ? "PASS" : "FAIL", name.c_str());
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
}  // namespace check

#define TEST(name) \
  static void name(); \
  static check::Register reg_##name(#name, name); \
  static void name()
#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::printf("  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      ++check::failures();                                                 \
    }                                                                      \
  } while (0)
