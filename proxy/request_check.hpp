// The one place on the request path where a request's framing and headers are checked before
// anything is forwarded: check_head (framing.hpp) judges the raw header bytes, then this checks
// what Beast parsed from them against that verdict, so the instance gets the body framing that
// wakegate decided and nothing an upstream could read differently. Refused: 400 (and close).
#pragma once

#include <string_view>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "proxy/framing.hpp"

namespace wakegate::proxy {

struct check_result {
  unsigned status = 0;         // 0 = forward; else the status to answer (then close)
  std::string_view reason;     // short text for the body and the log
};

check_result check_request(const boost::beast::http::request_parser<boost::beast::http::buffer_body>& p,
                           const head_verdict& v) noexcept;

}  // namespace wakegate::proxy
