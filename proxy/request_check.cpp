#include "proxy/request_check.hpp"

namespace wakegate::proxy {

namespace http = boost::beast::http;

check_result check_request(const http::request_parser<http::buffer_body>& p) noexcept {
  const auto& req = p.get();
  if (req.version() != 10 && req.version() != 11) return {505, "HTTP version not supported"};
  if (req.method() == http::verb::unknown) return {400, "unknown method"};

  int hosts = 0;
  for (auto it = req.find(http::field::host); it != req.end() && it->name() == http::field::host; ++it) ++hosts;
  if (hosts > 1) return {400, "several Host headers"};
  if (hosts == 0 && req.version() == 11) return {400, "missing Host header"};

  bool has_te = req.find(http::field::transfer_encoding) != req.end();
  bool has_cl = req.find(http::field::content_length) != req.end();
  if (has_te && has_cl) return {400, "both Transfer-Encoding and Content-Length"};
  if (has_te) {
    if (req.version() == 10) return {400, "Transfer-Encoding in an HTTP/1.0 request"};
    // Only a single final "chunked" is framed the same way by every reader.
    if (!p.chunked()) return {400, "Transfer-Encoding other than chunked"};
    int te_count = 0;
    for (auto it = req.find(http::field::transfer_encoding);
         it != req.end() && it->name() == http::field::transfer_encoding; ++it)
      ++te_count;
    std::string_view te = req[http::field::transfer_encoding];
    if (te_count != 1 || (te != "chunked" && te != "Chunked" && te != "CHUNKED")) return {400, "Transfer-Encoding other than chunked"};
  }
  if (req.target().empty() || (req.target().front() != '/' && req.method() != http::verb::options))
    return {400, "request target must be an absolute path"};
  return {};
}

}  // namespace wakegate::proxy
