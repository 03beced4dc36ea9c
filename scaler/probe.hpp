// HTTP readiness probe: GET `path` on the instance; any status below 500 means ready.
#pragma once

#include <chrono>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace wakegate::scaler {

struct probe_result {
  bool ready = false;
  std::string detail;  // why not ready: "connection refused", "status 503", "timeout"
};

boost::asio::awaitable<probe_result> probe_http(boost::asio::ip::tcp::endpoint ep, std::string path,
                                                std::chrono::milliseconds timeout);

}  // namespace wakegate::scaler
