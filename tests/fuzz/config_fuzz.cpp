// libFuzzer target: YAML text -> config loader. Never throws, never crashes; every diagnostic has
// a position inside the text (1-based line and column) and a message; a config comes back exactly
// when there are no errors.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config/loader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto r = wakegate::config::load_string(yaml, "fuzz.yaml", "/nonexistent-wakegate-fuzz");
  if (r.cfg.has_value() != r.errors.empty()) std::abort();
  for (const auto& d : r.errors) {
    if (d.line < 1 || d.column < 1 || d.message.empty() || d.file != "fuzz.yaml") std::abort();
  }
  return 0;
}
