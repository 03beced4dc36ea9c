#include "proxy/tls_session.hpp"

#include <charconv>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "proxy/router.hpp"
#include "proxy/server.hpp"

namespace wakegate::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr auto tok = asio::as_tuple(asio::use_awaitable);
constexpr auto close_notify_timeout = std::chrono::seconds(1);
constexpr std::string_view challenge_prefix = "/.well-known/acme-challenge/";

}  // namespace

asio::awaitable<bool> await_first_bytes(asio::ip::tcp::socket& s, worker& w, std::int64_t deadline_ns) {
  deadline_slot slot;
  deadline_guard guard(w.deadlines, slot, &s);
  w.deadlines.arm(slot, deadline_ns, now_ns());
  auto idle_it = w.idle.insert(w.idle.end(), &s);
  auto [ec] = co_await s.async_wait(asio::ip::tcp::socket::wait_read, tok);
  w.idle.erase(idle_it);
  if (!ec) co_return true;  // bytes, or the end of the stream: the handshake tells
  if (slot.timed_out(ec) && !w.draining) {
    w.owner->stats().tls_timeout.add();
    w.owner->stats().hit(limit_hit::header_timeout);
  }
  co_return false;
}

asio::awaitable<bool> tls_handshake(tls_stream& s, worker& w, deadline_slot& slot, std::int64_t deadline_ns) {
  auto& stats = w.owner->stats();
  w.deadlines.arm(slot, deadline_ns, now_ns());
  auto [ec] = co_await s.async_handshake(asio::ssl::stream_base::server, tok);
  if (ec) {
    if (w.draining) {
      // closed by the drain (the connection had asked nothing yet): not a failure
    } else if (slot.timed_out(ec)) {
      // Counted as a header_timeout hit too: header_timeout covers the handshake (found by
      // black-box testing: slow handshakes were missing from wakegate_limit_hits_total).
      stats.tls_timeout.add();
      stats.hit(limit_hit::header_timeout);
    } else if (BIO_number_read(SSL_get_rbio(s.native_handle())) != 0) {
      stats.tls_failed.add();
    }  // else closed before sending a byte (a TCP health check, a port scan): no handshake was tried
    co_return false;
  }
  (SSL_session_reused(s.native_handle()) == 1 ? stats.tls_resumed : stats.tls_full).add();
  co_return true;
}

asio::awaitable<void> tls_close(tls_stream& s, bool peer_there, deadline_sweeper& sweeper, deadline_slot& slot) {
  if (!peer_there) co_return;
  sweeper.arm_after(slot, close_notify_timeout);
  auto [ec] = co_await s.async_shutdown(tok);
  (void)ec;  // the peer may close without its own close_notify: nothing to do about it
}

plain_answer plain_http_answer(const worker& w, const http::request<http::buffer_body>& req) {
  plain_answer a;
  std::string_view target = req.target();
  if (target.starts_with(challenge_prefix) && w.challenges) {
    auto token = target.substr(challenge_prefix.size());
    if (auto it = w.challenges->find(token); it != w.challenges->end()) {
      a.status = 200;
      a.body = it->second;
      return a;
    }
    return a;  // not ours: an app may answer its own challenges
  }
  if (!w.opts->redirect_http || !w.certs) return a;
  // The name as routing reads it (lower case, no port, no trailing dot): "a.test." is the app of
  // "a.test" and must be redirected as it is (found by black-box testing: it was served in clear).
  thread_local std::string host;
  if (!router::normalize(req[http::field::host], host) || !w.certs->covers(host)) return a;
  a.status = 308;
  a.location.reserve(16 + host.size() + target.size());
  a.location.append("https://").append(host);
  if (w.https_port != 443) a.location.append(":").append(std::to_string(w.https_port));
  // The asterisk-form (OPTIONS *) names no resource: the redirect goes to the root (found by
  // black-box testing: "https://a.test:8443*").
  a.location.append(target == "*" ? std::string_view("/") : target);
  a.body = "redirecting to " + a.location + "\n";
  return a;
}

std::string_view format_hsts(config::duration hsts, char (&buf)[40]) noexcept {
  if (hsts.count() <= 0) return {};
  constexpr std::string_view prefix = "max-age=";
  std::copy(prefix.begin(), prefix.end(), buf);
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(hsts).count();
  auto [end, ec] = std::to_chars(buf + prefix.size(), buf + sizeof buf, secs);
  return {buf, static_cast<std::size_t>(end - buf)};
}

}  // namespace wakegate::proxy
