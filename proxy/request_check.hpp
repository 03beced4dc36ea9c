// The one place on the request path where a request's framing and headers are checked before
// anything is forwarded. Beast's parser is lenient where an edge must not be; what it lets through
// and an upstream could read differently is refused here with 400 (and the connection closed).
#pragma once

#include <string_view>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

namespace wakegate::proxy {

struct check_result {
  unsigned status = 0;         // 0 = forward; else the status to answer (then close)
  std::string_view reason;     // short text for the body and the log
};

check_result check_request(const boost::beast::http::request_parser<boost::beast::http::buffer_body>& p) noexcept;

}  // namespace wakegate::proxy
