#include "proxy/wire.hpp"

#include <charconv>

namespace wakegate::proxy::wire {

namespace http = boost::beast::http;

namespace {

void append_fields(const http::fields& f, std::string& out) {
  for (const auto& field : f) {
    out.append(field.name_string()).append(": ").append(field.value()).append("\r\n");
  }
  out.append("\r\n");
}

}  // namespace

void append_response_head(const http::response_header<>& h, std::string& out) {
  out.append(h.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  char code[4];
  auto r = std::to_chars(code, code + sizeof code, h.result_int());
  out.append(code, r.ptr).push_back(' ');
  auto reason = h.reason();
  out.append(reason.empty() ? http::obsolete_reason(h.result()) : reason).append("\r\n");
  append_fields(h, out);
}

gather::gather(std::string_view head, const char* data, std::size_t n, bool chunked, bool last) noexcept {
  static constexpr std::string_view crlf = "\r\n";
  static constexpr std::string_view last_chunk = "0\r\n\r\n";
  std::size_t k = 0;
  auto add = [&](const void* p, std::size_t len) {
    bufs_[k++] = boost::asio::const_buffer(p, len);
    size_ += len;
  };
  if (!head.empty()) add(head.data(), head.size());
  if (n > 0) {
    if (chunked) {
      auto r = std::to_chars(size_line_, size_line_ + 16, n, 16);
      r.ptr[0] = '\r';
      r.ptr[1] = '\n';
      add(size_line_, static_cast<std::size_t>(r.ptr + 2 - size_line_));
    }
    add(data, n);
    if (chunked) add(crlf.data(), crlf.size());
  }
  if (chunked && last) add(last_chunk.data(), last_chunk.size());
}

}  // namespace wakegate::proxy::wire
