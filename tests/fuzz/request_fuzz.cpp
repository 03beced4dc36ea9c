// libFuzzer target: bytes a client sends -> what wakegate answers or forwards (inspect_request, the
// checks the session runs). Beyond "no crash, no sanitizer report", it asserts the property that
// matters for smuggling: whatever is forwarded is read back by the same strict checks as exactly
// one request (nothing left over an upstream could take for another), and forwarding it again
// gives the same framing; and the raw-byte verdict and Beast never disagree on the body framing.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "proxy/inspect.hpp"

namespace {

[[noreturn]] void fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "request_fuzz: %s\ninput (%zu bytes): %.*s\n", what, input.size(),
               static_cast<int>(std::min<std::size_t>(input.size(), 2000)), input.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace wakegate;
  config::limits_config limits;
  limits.max_header_bytes = 8 * 1024;  // small, so that the 431 path is reached too
  limits.max_header_count = 32;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // Up to 4 pipelined requests.
  for (int i = 0; i < 4 && !bytes.empty(); ++i) {
    auto r = proxy::inspect_request(bytes, limits);
    if (r.need_more) break;
    if (r.status != 0) {
      if (r.reason == "ambiguous body framing") fail("check_head and Beast disagree on framing", bytes);
      break;
    }
    // Read back without the size limits: wakegate's own headers (X-Forwarded-*, X-Request-Id)
    // may take a request just past them.
    config::limits_config relaxed;
    relaxed.max_header_count = limits.max_header_count + 8;
    auto again = proxy::inspect_request(r.forwarded, relaxed);
    if (again.status != 0 || again.need_more) fail("forwarded request not accepted when read back", r.forwarded);
    if (again.consumed != r.forwarded.size()) fail("forwarded bytes hold more than one request", r.forwarded);
    if (again.close_after != r.close_after) fail("close_after changed when read back", r.forwarded);
    if (r.consumed == 0 || r.consumed > bytes.size()) fail("consumed out of range", bytes);
    bytes.remove_prefix(r.consumed);
  }
  return 0;
}
