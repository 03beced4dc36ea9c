#include "scaler/probe.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

namespace wakegate::scaler {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

asio::awaitable<probe_result> probe_http(asio::ip::tcp::endpoint ep, std::string path,
                                         std::chrono::milliseconds timeout) {
  constexpr auto tok = asio::as_tuple(asio::use_awaitable);
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(timeout);
  auto [cec] = co_await stream.async_connect(ep, tok);
  if (cec) co_return probe_result{false, cec == beast::error::timeout ? "timeout" : cec.message()};

  http::request<http::empty_body> req{http::verb::get, path, 11};
  req.set(http::field::host, ep.address().to_string() + ":" + std::to_string(ep.port()));
  req.set(http::field::user_agent, "wakegate-probe");
  req.keep_alive(false);
  auto [wec, wn] = co_await http::async_write(stream, req, tok);
  if (wec) co_return probe_result{false, wec.message()};

  beast::flat_buffer buf;
  http::response_parser<http::empty_body> parser;
  auto [rec, rn] = co_await http::async_read_header(stream, buf, parser, tok);
  if (rec) co_return probe_result{false, rec == beast::error::timeout ? "timeout" : rec.message()};
  unsigned status = parser.get().result_int();
  beast::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  if (status >= 500) co_return probe_result{false, "status " + std::to_string(status)};
  co_return probe_result{true, {}};
}

}  // namespace wakegate::scaler
