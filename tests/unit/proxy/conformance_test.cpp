// The http-desync-guardian corpus (tests/data/http-desync-guardian, Apache-2.0) through
// inspect_request, the same checks the session runs: every Severe case answered 400; no
// Ambiguous case forwarded in a form an upstream could read differently; every Compliant case
// forwarded intact (except the few documented below, which wakegate refuses on purpose).
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "proxy/framing.hpp"
#include "proxy/inspect.hpp"

using namespace wakegate;

namespace {

std::string lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.erase(s.begin());
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
  return s;
}

struct conformance_case {
  std::string file, name, tier, reason;
  std::string bytes;  // the request as a client sends it, with a body matching its framing
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;   // the body the upstream must receive (decoded)
};

// Compliant cases wakegate refuses on purpose (400), with why.
const std::map<std::string, std::string> stricter = {
    {"Empty URI", "an empty request-target is not a valid origin-form (RFC 9112 3.2)"},
    {"Transfer-Encoding with a param: chunked;custom_param",
     "parameters on transfer codings: readers disagree on whether 'chunked;x' is chunked"},
    {"TE with custom parameters OK", "parameters on transfer codings: readers disagree on whether 'chunked;x' is chunked"},
    {"Compliant URL", "a fragment ('#') is in no request-target form (RFC 9112 3.2); HAProxy refuses it too"},
};

std::vector<conformance_case> load_corpus() {
  std::vector<conformance_case> cases;
  std::filesystem::path dir = std::filesystem::path(WAKEGATE_SOURCE_DIR) / "tests/data/http-desync-guardian";
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    YAML::Node root = YAML::LoadFile(f.string());
    for (const auto& n : root) {
      conformance_case c;
      c.file = f.filename().string();
      c.name = n["name"].as<std::string>();
      c.tier = n["expected"]["tier"].as<std::string>();
      c.reason = n["expected"]["reason"].as<std::string>();
      std::string version = n["version"].IsNull() ? "" : n["version"].as<std::string>();
      std::string uri = n["uri"].IsNull() ? "" : n["uri"].as<std::string>();
      c.bytes = n["method"].as<std::string>() + " " + uri + (version.empty() ? "" : " " + version) + "\r\n";
      bool has_host = false, has_te = false;
      std::optional<std::uint64_t> cl;
      if (n["headers"]) {
        for (const auto& h : n["headers"]) {
          std::string name = h["name"].IsNull() ? "" : h["name"].as<std::string>();
          std::string value = h["value"].IsNull() ? "" : h["value"].as<std::string>();
          c.headers.emplace_back(name, value);
          c.bytes += name + ":" + value + "\r\n";
          std::string l = lower(name);
          if (l == "host") has_host = true;
          if (l == "transfer-encoding") has_te = true;
          if (l == "content-length") {
            std::string v = trim(value);
            if (!v.empty() && v.size() < 9 && v.find_first_not_of("0123456789") == std::string::npos)
              cl = std::stoull(v);
          }
        }
      }
      // The corpus leaves Host out; wakegate routes by it (and HTTP/1.1 requires it).
      if (!has_host) c.bytes += "Host: conformance.test\r\n";
      c.bytes += "\r\n";
      if (has_te) {
        c.bytes += "5\r\nhello\r\n0\r\n\r\n";
        c.body = "hello";
      } else if (cl) {
        c.body.assign(*cl, 'x');
        c.bytes += c.body;
      }
      cases.push_back(std::move(c));
    }
  }
  return cases;
}

// The forwarded message read back by wakegate's own strict reading: one whole request, nothing
// left over that an upstream could take for a second one, and the same bytes forwarded again.
void check_unambiguous(const proxy::inspection& r, const config::limits_config& limits) {
  auto again = proxy::inspect_request(r.forwarded, limits);
  INFO("forwarded: " << r.forwarded.substr(0, 600));
  INFO("re-read: " << again.status << " " << again.reason);
  CHECK(again.status == 0);
  CHECK_FALSE(again.need_more);
  CHECK(again.consumed == r.forwarded.size());
}

}  // namespace

TEST_CASE("conformance: the http-desync-guardian corpus", "[conformance]") {
  auto cases = load_corpus();
  REQUIRE(cases.size() == 159);
  config::limits_config limits;
  std::map<std::string, std::map<std::string, int>> outcome;  // tier -> outcome -> count
  for (const auto& c : cases) {
    INFO(c.file << ": " << c.name << " (" << c.tier << ", " << c.reason << ")");
    auto r = proxy::inspect_request(c.bytes, limits);
    INFO("status " << r.status << " " << r.reason);
    CHECK_FALSE(r.need_more);
    std::string what = r.status != 0 ? std::to_string(r.status) : r.close_after ? "forwarded+close" : "forwarded";
    ++outcome[c.tier][what];

    if (c.tier == "Severe") {
      CHECK(r.status == 400);
    } else if (c.tier == "Ambiguous") {
      // Refused, or forwarded in the one form wakegate parsed and with both connections closed after.
      if (r.status == 0) {
        CHECK(r.close_after);
        check_unambiguous(r, limits);
      } else {
        CHECK(r.status >= 400);
      }
    } else if (c.tier == "Acceptable") {
      if (r.status == 0) check_unambiguous(r, limits);
    } else {
      REQUIRE(c.tier == "Compliant");
      if (stricter.count(c.name)) {
        INFO("refused on purpose: " << stricter.at(c.name));
        CHECK(r.status == 400);
        continue;
      }
      REQUIRE(r.status == 0);
      CHECK_FALSE(r.close_after);
      check_unambiguous(r, limits);
      // Intact: every end-to-end header with its value, and the body.
      auto head_end = r.forwarded.find("\r\n\r\n");
      REQUIRE(head_end != std::string::npos);
      std::string head = r.forwarded.substr(0, head_end + 2);
      std::string te;  // several Transfer-Encoding lines are forwarded as one
      for (const auto& [name, value] : c.headers) {
        std::string l = lower(name);
        if (l == "connection" || l == "x-forwarded-for") continue;  // hop-by-hop / appended to
        if (l == "transfer-encoding") {
          te += (te.empty() ? "" : ", ") + trim(value);
          continue;
        }
        INFO("header " << name << ": " << value);
        CHECK(head.find("\r\n" + name + ": " + trim(value) + "\r\n") != std::string::npos);
      }
      if (!te.empty()) CHECK(head.find("\r\nTransfer-Encoding: " + te + "\r\n") != std::string::npos);
      CHECK(r.forwarded.find(c.body, head_end) != std::string::npos);
    }
  }
  // The outcome per tier, for the record (ctest --output-on-failure / -V shows it).
  for (const auto& [tier, m] : outcome)
    for (const auto& [what, n] : m) WARN(tier << " -> " << what << ": " << n);
}
