// Writing messages on the wire ourselves: a response head from Beast's fields appended to one
// reusable string (a request head: append_forward_request in headers.hpp; a plain response:
// response_head.hpp), and chunk framing around relayed body bytes, sent with one gathered write.
// Beast's serializer produces the same bytes through layers of buffer views that cost more
// instructions than the rest of the request path (bench/instructions.sh measures it).
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/message.hpp>

namespace wakegate::proxy::wire {

// "HTTP/1.x code reason\r\n" (the instance's reason, else the standard one), fields, "\r\n".
void append_response_head(const boost::beast::http::response_header<>& h, std::string& out);

// One write: an optional head, then `n` body bytes (in a chunk when `chunked`), then the last
// chunk when `chunked` and `last`. Not copyable: its buffers point into itself.
class gather {
 public:
  gather(std::string_view head, const char* data, std::size_t n, bool chunked, bool last) noexcept;
  gather(const gather&) = delete;
  gather& operator=(const gather&) = delete;

  const std::array<boost::asio::const_buffer, 5>& buffers() const noexcept { return bufs_; }
  std::size_t size() const noexcept { return size_; }  // bytes to write; 0 = nothing to send

 private:
  std::array<boost::asio::const_buffer, 5> bufs_{};
  char size_line_[20];  // hex chunk size + CRLF
  std::size_t size_ = 0;
};

}  // namespace wakegate::proxy::wire
