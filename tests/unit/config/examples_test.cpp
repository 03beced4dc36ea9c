// Every shipped example in config/examples/ must load without errors.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>

#include "config/loader.hpp"

using namespace wakegate::config;
namespace fs = std::filesystem;

TEST_CASE("every config/examples/*.yaml loads without errors", "[config][examples]") {
  const fs::path dir = fs::path(WAKEGATE_SOURCE_DIR) / "config" / "examples";
  std::vector<fs::path> files;
  for (const auto& item : fs::directory_iterator(dir)) {
    if (item.path().extension() == ".yaml") files.push_back(item.path());
  }
  std::sort(files.begin(), files.end());
  REQUIRE_FALSE(files.empty());
  for (const auto& file : files) {
    const load_result result = load_file(file.string());
    std::string problems;
    for (const auto& d : result.errors) problems += d.str() + "\n";
    INFO(file.string() << ":\n" << problems);
    CHECK(result.ok());
    CHECK(result.cfg.has_value());
  }
}
