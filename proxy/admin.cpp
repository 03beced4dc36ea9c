#include "proxy/admin.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include "common/log.hpp"
#include "proxy/http_date.hpp"
#include "proxy/listen.hpp"

namespace wakegate::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {
constexpr auto tok = asio::as_tuple(asio::use_awaitable);

// Compares without an early exit, so the time taken says nothing about how much matched.
bool same_secret(std::string_view a, std::string_view b) noexcept {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.size() ? b.size() : 1)]);
  return diff == 0 && !b.empty();
}

bool authorized(const http::request<http::string_body>& req, std::string_view token) {
  if (token.empty()) return true;
  std::string_view auth = req[http::field::authorization];
  constexpr std::string_view scheme = "Bearer ";
  if (auth.size() <= scheme.size() || !beast::iequals(auth.substr(0, scheme.size()), scheme)) return false;
  return same_secret(auth.substr(scheme.size()), token);
}
}

tcp::endpoint admin_server::start(const config::endpoint& at) {
  auto ep = listen_endpoint(at);
  acceptor_.emplace(ctx_);
  open_listener(*acceptor_, ep, "admin", false, true);
  auto bound = acceptor_->local_endpoint();

  asio::co_spawn(
      ctx_,
      [this]() -> asio::awaitable<void> {
        asio::steady_timer backoff(ctx_);
        while (acceptor_ && acceptor_->is_open()) {
          auto [ec, sock] = co_await acceptor_->async_accept(tok);
          if (ec == asio::error::operation_aborted) co_return;
          if (ec) {
            // Out of descriptors or memory: retry shortly, as the proxy listeners do (found by
            // black-box testing: this loop spun at 100% CPU on the control thread, which also
            // runs the scaler, while a scrape waited in the backlog).
            log::warn("accept failed", {{"listener", "admin"}, {"error", ec.message()}});
            backoff.expires_after(std::chrono::milliseconds(50));
            co_await backoff.async_wait(tok);  // the loop's condition ends it once stopped
            continue;
          }
          asio::co_spawn(
              ctx_,
              [this, s = std::move(sock)]() mutable -> asio::awaitable<void> {
                beast::tcp_stream stream(std::move(s));
                beast::flat_buffer buf;
                for (;;) {
                  http::request_parser<http::string_body> p;
                  p.header_limit(16 * 1024);
                  p.body_limit(64 * 1024);
                  stream.expires_after(std::chrono::seconds(30));
                  auto [rec, rn] = co_await http::async_read(stream, buf, p, tok);
                  if (rec) co_return;
                  auto& req = p.get();
                  http::response<http::string_body> res{http::status::ok, 11};
                  res.set(http::field::server, "wakegate");
                  res.set(http::field::date, http_date_now());
                  std::string_view path = req.target();
                  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
                  if (req.method() != http::verb::get && req.method() != http::verb::head) {
                    res.result(http::status::method_not_allowed);
                    res.set(http::field::allow, "GET, HEAD");
                    res.body() = "method not allowed\n";
                  } else if (path == "/healthz") {
                    res.body() = "ok\n";
                  } else if (path == "/readyz") {
                    if (!ready_) res.result(http::status::service_unavailable);
                    res.body() = ready_ ? "ready\n" : "not ready\n";
                  } else if (path == "/metrics") {
                    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
                    res.body() = handlers_.metrics();
                  } else if (path == "/status" && !authorized(req, token_)) {
                    res.result(http::status::unauthorized);
                    res.set(http::field::www_authenticate, "Bearer realm=\"wakegate\"");
                    res.body() = "admin.token required: Authorization: Bearer <token>\n";
                  } else if (path == "/status") {
                    res.set(http::field::content_type, "application/json");
                    res.body() = handlers_.status();
                    res.body().push_back('\n');
                  } else {
                    res.result(http::status::not_found);
                    res.body() = "not found; try /healthz /readyz /metrics /status\n";
                  }
                  if (res.find(http::field::content_type) == res.end())
                    res.set(http::field::content_type, "text/plain; charset=utf-8");
                  res.keep_alive(req.keep_alive());
                  res.prepare_payload();
                  if (req.method() == http::verb::head) res.body().clear();
                  auto [wec, wn] = co_await http::async_write(stream, res, tok);
                  if (wec || !res.keep_alive()) break;
                }
                beast::error_code ignored;
                stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
              },
              asio::detached);
        }
      },
      asio::detached);
  return bound;
}

void admin_server::stop() {
  boost::system::error_code ec;
  if (acceptor_) acceptor_->close(ec);
}

}  // namespace wakegate::proxy
