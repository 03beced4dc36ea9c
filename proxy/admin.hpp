// The admin listener: /healthz, /readyz, /metrics, /status. It runs on the control thread, so
// it reads control-plane state directly.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "config/config.hpp"

namespace wakegate::proxy {

class admin_server {
 public:
  struct handlers {
    std::function<std::string()> metrics;  // Prometheus text
    std::function<std::string()> status;   // JSON
  };

  admin_server(boost::asio::io_context& ctx, handlers h) : ctx_(ctx), handlers_(std::move(h)) {}

  // Binds (throws on failure) and starts accepting; returns the bound address.
  boost::asio::ip::tcp::endpoint start(const config::endpoint& at);
  void stop();

  void set_ready(bool r) noexcept { ready_ = r; }
  // Bearer token required for /status ("" = none). Control thread only, like the listener.
  void set_token(std::string token) { token_ = std::move(token); }

 private:
  boost::asio::io_context& ctx_;
  handlers handlers_;
  std::optional<boost::asio::ip::tcp::acceptor> acceptor_;
  bool ready_ = false;
  std::string token_;
};

}  // namespace wakegate::proxy
