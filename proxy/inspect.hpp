// A request's whole way through wakegate's checks without sockets: bytes as a client sent them
// in, the verdict out, and what the instance would receive (the rewritten header and the body as
// relayed). It runs the same checks as the session (check_head, Beast's parser, check_request,
// rewrite_request), for the conformance test and the libFuzzer target.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace wakegate::proxy {

struct inspection {
  unsigned status = 0;       // 0: forwarded; else wakegate answers this status and closes
  std::string reason;
  bool need_more = false;    // the bytes end inside the header or body (nothing decided/forwarded yet)
  bool close_after = false;  // forwarded, but neither connection carries another request
  std::string forwarded;     // header + body as the instance would receive them (status 0)
  std::size_t consumed = 0;  // input bytes that made up this request
};

// One request from the start of `bytes` (pipelined bytes after it are left alone).
inspection inspect_request(std::string_view bytes, const config::limits_config& limits);

}  // namespace wakegate::proxy
