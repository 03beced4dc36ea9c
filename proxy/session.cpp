#include "proxy/session.hpp"

#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/flat_static_buffer.hpp>
#include <boost/beast/http.hpp>

#include "common/log.hpp"
#include "proxy/deadline.hpp"
#include "proxy/framing.hpp"
#include "proxy/headers.hpp"
#include "proxy/http_date.hpp"
#include "proxy/idle_watch.hpp"
#include "proxy/request_check.hpp"
#include "proxy/response_head.hpp"
#include "proxy/server.hpp"
#include "proxy/text_scan.hpp"
#include "proxy/wire.hpp"
#include "proxy/tls_session.hpp"
#include "proxy/tunnel.hpp"

namespace wakegate::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

// Deferred operations are awaited in place: no coroutine frame of their own per operation, as
// use_awaitable would allocate.
constexpr auto tok = asio::as_tuple(asio::deferred);
template <class Stream>
constexpr auto read_tok = tok;
// Bodies move in chunks of up to this size. A relay buffer also has room for a response head, so
// that a 64 KiB body with its head is one read and one write.
constexpr std::size_t relay_chunk = 64 * 1024;
constexpr std::size_t relay_buffer_size = relay_chunk + 4 * 1024;
// A plain response whose head and body fit in this many bytes is read whole, then written to the
// client at once (relay_response says when it is not).
constexpr std::size_t hold_bytes = 16 * 1024;
// An instance's response head may take max_header_bytes, but never 64 KiB or more: no field of
// a head within that can exceed what Beast's fields hold (max_field_bytes), past which its parser
// throws from inside the read, out of the worker's event loop (found in review: with
// max_header_bytes above 64 KiB, a chunked response with a 66 KB field ended the process).
std::size_t response_head_limit(const config::limits_config& limits) noexcept {
  return std::min<std::size_t>(limits.max_header_bytes, 64 * 1024 - 1);
}
constexpr std::size_t client_buffer_slack = 16 * 1024;  // past max_header_bytes: some body

// Relay buffers are borrowed per transfer from a per-thread free list, so an idle connection
// holds none and a busy one allocates nothing after warm-up.
class relay_buffer {
 public:
  relay_buffer() {
    auto& pool = free_list();
    if (pool.empty()) {
      data_.reset(new char[relay_buffer_size]);  // not zero-filled: every byte is written before use
    } else {
      data_ = std::move(pool.back());
      pool.pop_back();
    }
  }
  ~relay_buffer() {
    auto& pool = free_list();
    if (pool.size() < 32) pool.push_back(std::move(data_));  // at most 2.1 MiB kept per thread
  }
  relay_buffer(const relay_buffer&) = delete;
  relay_buffer& operator=(const relay_buffer&) = delete;
  char* data() noexcept { return data_.get(); }

 private:
  static std::vector<std::unique_ptr<char[]>>& free_list() {
    thread_local std::vector<std::unique_ptr<char[]>> pool;
    return pool;
  }
  std::unique_ptr<char[]> data_;
};

// A message head being written, borrowed from a per-thread free list like relay_buffer: its
// capacity is kept for the next request, and an idle connection holds none.
class head_buffer {
 public:
  head_buffer() {
    auto& pool = free_list();
    if (!pool.empty()) {
      text_ = std::move(pool.back());
      pool.pop_back();
    }
    text_.clear();
  }
  ~head_buffer() {
    auto& pool = free_list();
    if (pool.size() < 64 && text_.capacity() <= 16 * 1024) pool.push_back(std::move(text_));
  }
  head_buffer(const head_buffer&) = delete;
  head_buffer& operator=(const head_buffer&) = delete;
  std::string& text() noexcept { return text_; }

 private:
  static std::vector<std::string>& free_list() {
    thread_local std::vector<std::string> pool;
    return pool;
  }
  std::string text_;
};

bool idempotent(http::verb v) noexcept {
  switch (v) {
    case http::verb::get:
    case http::verb::head:
    case http::verb::options:
    case http::verb::trace:
    case http::verb::put:
    case http::verb::delete_:
      return true;
    default:
      return false;
  }
}

// Every whole element already in `buf` (chunk headers, bodies, the end) is parsed with no read,
// while the body buffer has room: a small chunked body goes out in one write, a stream chunk by
// chunk as it comes (Beast's eager read would keep reading while the next chunk's header is
// incomplete, so a chunk would wait for the next).
template <class Parser, class Buffer>
void parse_buffered(Parser& p, Buffer& buf, beast::error_code& ec) {
  while (!ec && !p.is_done() && p.get().body().size > 0 && buf.size() > 0) {
    const auto used = p.put(buf.data(), ec);
    buf.consume(used);
    if (ec == http::error::need_more) ec = {};
    if (used == 0) break;
  }
}

// A LF not after a CR, in bytes the parser stopped at (with room for body bytes, so they are all
// framing: a chunk's size line, the CR LF after its data, trailer lines). A LF first in them
// could follow a CR already parsed, so it is not counted.
bool bare_lf(std::string_view pending) noexcept {
  for (auto i = pending.find('\n', 1); i != std::string_view::npos; i = pending.find('\n', i + 1))
    if (pending[i - 1] != '\r') return true;
  return false;
}

// The next piece of a body into the parser's buffer (`p.get().body()`, with room): what
// http::async_read_some does (what `buf` holds is parsed first, then reads until body bytes come,
// the body ends or an error), except that framing with a bare LF is an error at once. Beast ends
// chunk lines at CR LF only and takes a lone LF for an ordinary byte, so a body framed
// "5\nhello\n0\n\n" would wait for more bytes until io_timeout (found by black-box testing).
// `filled` (when given): whether the latest read took all the room it had.
template <class Stream, class Buffer, class Parser>
asio::awaitable<beast::error_code> read_body_some(Stream& s, Buffer& buf, Parser& p, bool* filled = nullptr) {
  const std::size_t room = p.get().body().size;
  for (;;) {
    beast::error_code ec;
    parse_buffered(p, buf, ec);
    if (ec == http::error::need_buffer) ec = {};  // the body buffer is full
    if (ec || p.is_done()) co_return ec;
    // Stopped with room for body bytes: what is left is framing. Checked before the bytes parsed
    // so far are handed on (found in CI: "5\r\nhello\r\n0\n\n" forwarded "hello" first, and a
    // quick instance's answer could start before the 400).
    if (p.get().body().size > 0 && bare_lf({static_cast<const char*>(buf.data().data()), buf.size()}))
      co_return http::error::bad_line_ending;
    if (p.get().body().size != room) co_return ec;
    const std::size_t space =
        std::min(std::max<std::size_t>(512, buf.capacity() - buf.size()), buf.max_size() - buf.size());
    if (space == 0) co_return http::error::buffer_overflow;
    auto [rec, n] = co_await s.async_read_some(buf.prepare(space), read_tok<Stream>);
    if (rec == asio::error::eof) {
      p.put_eof(ec);  // the end of a body that ends at close, else partial_message
      co_return ec;
    }
    if (rec) co_return rec;
    buf.commit(n);
    if (filled != nullptr) *filled = n == space;
  }
}

// Beast takes any byte inside a quoted chunk-extension value, a LF or a NUL too, where other
// parsers end the line at the LF (found by black-box testing: nginx and HAProxy refuse it). A
// control byte anywhere in a request's chunk extensions is refused (400), as in its fields.
struct chunk_ext_check {
  void operator()(std::uint64_t /*size*/, beast::string_view extensions, beast::error_code& ec) const {
    if (first_non_text(extensions.data(), extensions.size()) != extensions.size()) ec = http::error::bad_chunk_extension;
  }
};

// Where the upstream exchange failed, for the status and for blaming the instance or not.
enum class failure { none, client, upstream_connect, upstream_io, upstream_timeout, upstream_protocol };

// How reading the next request's header ended.
enum class head_result { ready, closed, answered };

}  // namespace

// Stream: tcp::socket (http listener) or tls_stream (https, proxy/tls_stream.hpp).
template <class Stream>
class session {
  static constexpr bool is_tls = !std::is_same_v<Stream, tcp::socket>;

 public:
  // The connection's whole life. The session lives in this coroutine's own frame: one frame
  // less per connection than a session whose run() is a coroutine of its own. `certs` (https):
  // held for the connection, as the SNI callback of its handshake reads this certificate set.
  static asio::awaitable<void> serve(worker& w, tcp::socket socket, std::shared_ptr<const tls::cert_set> certs) {
    if constexpr (is_tls) {
      if (!certs || certs->empty()) {  // e.g. before ACME's first certificate
        w.owner->stats().tls_failed.add();
        co_return;
      }
    }
    w.owner->stats().connections_accepted.add();
    w.owner->stats().connections_open.add(1);
    ++w.open;
    struct open_guard {
      worker& w;
      ~open_guard() {
        w.owner->stats().connections_open.add(-1);
        --w.open;
        if (w.accept_resume) w.accept_resume->cancel();  // an accept loop paused at max_connections
      }
    } og{w};
    // The first request's header must be in within header_timeout of the accept, the TLS
    // handshake included (found by black-box testing: each step had a timeout of its own).
    std::int64_t first_deadline = now_ns() + ns(w.opts->limits.header_timeout);
    if constexpr (is_tls) {
      if (w.draining) co_return;  // accepted just before the drain began: nothing asked yet
      if (!co_await await_first_bytes(socket, w, first_deadline)) {
        beast::error_code ignored;
        socket.close(ignored);
        co_return;
      }
    }
    session self(w, std::move(socket), certs.get());
    // Timeouts of the client connection and of the instance connection in use (proxy/deadline.hpp).
    deadline_guard client_deadline(w.deadlines, self.client_dl_, &self.client_);
    deadline_guard up_deadline(w.deadlines, self.up_dl_, nullptr);

    if constexpr (is_tls) {
      if (w.draining) co_return;
      // Listed as idle during the handshake: a draining server closes it (nothing was asked yet).
      auto idle_it = w.idle.insert(w.idle.end(), &self.client_);
      const bool ok = co_await tls_handshake(self.stream_, w, self.client_dl_, first_deadline);
      w.idle.erase(idle_it);
      if (!ok) {
        beast::error_code ignored;
        self.client_.close(ignored);
        co_return;
      }
    }
    for (;;) {
      if (w.draining) break;
      const auto& limits = w.opts->limits;
      self.parser_.emplace();
      self.parser_->header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
      self.parser_->body_limit(boost::none);
      auto head = co_await self.read_head(first_deadline);
      first_deadline = 0;
      if (head != head_result::ready) break;
      bool keep = co_await self.handle_request();
      if (!keep) break;
    }
    if constexpr (is_tls)
      co_await tls_close(self.stream_, !self.client_gone_ && !self.response_cut_, w.deadlines, self.client_dl_);
    beast::error_code ignored;
    self.client_.shutdown(tcp::socket::shutdown_send, ignored);
    if (self.linger_) co_await self.linger();
    self.client_.close(ignored);
  }

 private:
  // Refused with unread request bytes: read (and drop) what follows for a moment, so that
  // closing does not reset the connection before the client reads the answer. A coroutine of
  // its own (as is the borrowed buffer): what it holds would otherwise be in every connection's
  // frame.
  asio::awaitable<void> linger() {
    w_.deadlines.arm_after(client_dl_, std::chrono::seconds(1));
    relay_buffer sink;
    for (std::size_t total = 0; total < 256 * 1024;) {
      auto [ec, n] = co_await client_.async_read_some(asio::buffer(sink.data(), relay_chunk), tok);
      if (ec) break;
      total += n;
    }
  }

  session(worker& w, tcp::socket socket, const tls::cert_set* certs)
      : w_(w), stream_(make_stream(std::move(socket), certs)), client_(beast::get_lowest_layer(stream_)) {
    beast::error_code ec;
    auto ep = client_.remote_endpoint(ec);
    if (!ec) client_ip_ = ep.address().to_string();
    client_.set_option(tcp::no_delay(true), ec);
    buf_.max_size(w_.opts->limits.max_header_bytes + client_buffer_slack);
  }
  static Stream make_stream(tcp::socket socket, const tls::cert_set* certs) {
    if constexpr (is_tls) return Stream(std::move(socket), certs->default_context());
    else return socket;
  }

 private:
  // ------------------------------------------------------------------------------------------
  // Reading a request header: wakegate finds its end and checks its bytes (check_head) before
  // Beast parses it, under max_header_bytes, max_header_count and header_timeout.

  // `first_deadline`: for a connection's first request, when its whole header must be in (0 for
  // the requests after it).
  asio::awaitable<head_result> read_head(std::int64_t first_deadline) {
    const bool first = first_deadline != 0;
    auto opts = w_.opts;  // a reload (SIGHUP) may replace w_.opts while this connection waits
    const auto& limits = opts->limits;
    // Requests the client sent before getting the previous response (pipelined): bytes already
    // read, or, when the latest read took all the room it had (so it may have left bytes behind),
    // bytes waiting in the socket (found by black-box testing: requests of 32, 64 or 512 bytes
    // made every read end on a request's end, and the limit never came). The kernel is asked
    // only after such a read: a read with room to spare emptied the socket, so what came after it
    // may have been sent after the previous response (a client that does not pipeline).
    const bool ahead = buf_.size() > 0 || (read_filled_ && client_input_waiting());
    pipelined_ = (!first && ahead) ? pipelined_ + 1 : 0;
    last_pipelined_ = pipelined_ >= limits.max_pipelined;
    if (last_pipelined_) w_.owner->stats().hit(limit_hit::pipelined);

    // Waiting for a request's first byte: idle_timeout, then a quiet close. From its first byte:
    // header_timeout for the whole header, then 408. A new connection has header_timeout from
    // its accept for both.
    auto now = now_ns();
    const std::int64_t idle_deadline = first ? first_deadline : now + ns(limits.idle_timeout);
    std::int64_t header_deadline = deadline_slot::never;
    std::int64_t head_began = 0;  // when its first bytes came, if it took more than one read
    std::size_t scanned = 0;
    // A refusal leaves the loop and is answered at its end: one co_await for all of them, as
    // each co_await has slots of its own in the frame, which a connection holds while it waits
    // (a held request's handle_request frame reuses this one's memory, bench/compare.sh).
    struct refusal {
      unsigned status = 0;
      std::string_view reason;
      limit_hit limit = limit_hit::count_;
    } why;
    for (;;) {
      std::string_view data(static_cast<const char*>(buf_.data().data()), buf_.size());
      while (data.size() >= 2 && data[0] == '\r' && data[1] == '\n') {  // empty lines before a request
        buf_.consume(2);
        data.remove_prefix(2);
        scanned = 0;
      }
      if (!data.empty()) {
        std::size_t end = find_head_end(data, scanned);
        if (end == std::string_view::npos) {
          why = {400, "bare LF in header", limit_hit::count_};
          break;
        }
        if (end > limits.max_header_bytes || (end == 0 && data.size() >= limits.max_header_bytes)) {
          why = {431, "request header too large", limit_hit::header_size};
          break;
        }
        if (end != 0) {
          verdict_ = check_head(data.substr(0, end), limits.max_header_count);
          if (verdict_.status != 0) {
            why = {verdict_.status, verdict_.reason,
                   verdict_.status == 431 ? limit_hit::header_count : limit_hit::count_};
            break;
          }
          beast::error_code ec;
          std::size_t used = parser_->put(asio::buffer(data.data(), end), ec);
          if (ec == http::error::need_buffer) ec = {};
          if (ec || used != end || !parser_->is_header_done()) {
            why = {400, "bad request", limit_hit::count_};
            break;
          }
          buf_.consume(end);
          if (verdict_.framing == body_framing::chunked) parser_->on_chunk_header(chunk_ext_check_);
          // The header's (or the idle wait's) deadline ends with the header: a body's reads have
          // io_timeout (found by black-box testing: a first request's upload was cut with no
          // answer at header_timeout from the accept, a later one's at idle_timeout).
          deadline_sweeper::disarm(client_dl_);
          co_return head_result::ready;
        }
        scanned = data.size();
        // An incomplete head: header_timeout runs from its first bytes, which came with this read.
        if (header_deadline == deadline_slot::never) {
          now = now_ns();
          head_began = now;
          header_deadline = first ? first_deadline : now + ns(limits.header_timeout);
        }
      }
      std::size_t space = read_space();
      if (space == 0) {
        why = {431, "request header too large", limit_hit::header_size};
        break;
      }
      const bool idle = data.empty();
      const std::int64_t deadline = idle ? idle_deadline : header_deadline;
      if (client_dl_.at_ns != deadline) w_.deadlines.arm(client_dl_, deadline, now);
      // Idle until the next request starts: a draining server closes us here.
      std::list<tcp::socket*>::iterator idle_it;
      if (idle) idle_it = w_.idle.insert(w_.idle.end(), &client_);
      auto [ec, n] = co_await stream_.async_read_some(buf_.prepare(space), read_tok<Stream>);
      if (idle) w_.idle.erase(idle_it);
      if (!ec) {
        buf_.commit(n);
        read_filled_ = n == space;
        continue;
      }
      if (client_dl_.timed_out(ec)) {
        if (!idle) {
          why = {408, "request header timeout", limit_hit::header_timeout};
          break;
        }
        // Silent: closed without an answer, as nginx and HAProxy do. A new connection that never
        // sent a byte (a port scan, a load balancer's TCP check) is not an idle keep-alive one.
        w_.owner->stats().hit(first ? limit_hit::header_timeout : limit_hit::idle_timeout);
        co_return head_result::closed;
      }
      // A quiet close between requests is the normal end of a connection; one inside a header too.
      co_return head_result::closed;
    }
    // The request so far is what buf_ holds (a view made again: prepare may have moved it).
    co_return co_await refuse(why.status, why.reason, why.limit,
                              std::string_view(static_cast<const char*>(buf_.data().data()), buf_.size()), head_began);
  }

  // How much the next client read may take: what buf_ already has room for, at least 512 bytes
  // (an idle connection's buffer stays small), never past its limit (0: full).
  std::size_t read_space() const noexcept {
    return std::min(std::max<std::size_t>(512, buf_.capacity() - buf_.size()), buf_.max_size() - buf_.size());
  }

  static std::int64_t ns(config::duration d) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  }

  // Clears what a request's answer and access log line are built from, as it starts (handled or
  // refused): nothing of the connection's previous request may show through.
  void start_request() noexcept {
    start_ns_ = now_ns();
    done_ns_ = 0;
    status_ = 0;
    bytes_in_ = bytes_out_ = 0;
    held_ = false;
    retried_after_drop_ = false;
    refusal_ = {};
    error_.clear();
    instance_status_ = 0;
    held_ns_ = 0;
    sent_ns_ = answered_ns_ = 0;
    app_name_ = {};
    instance_id_ = {};
    request_id_ = {};
    hsts_ = {};  // set once routed, from the app's config
  }

  // Answers a request refused before routing (then the connection closes). `head`: what came of
  // it, whose request line (if it has one) names it in the access log with `reason`, and
  // `began_ns` when its first bytes came (0: with the read that completed it). Found by black-box
  // testing: every refusal was logged alike, without method, path or why, and a 408 as instant.
  asio::awaitable<head_result> refuse(unsigned status, std::string_view reason, limit_hit limit, std::string_view head,
                                      std::int64_t began_ns) {
    if (limit != limit_hit::count_) w_.owner->stats().hit(limit);
    w_.owner->stats().bad_requests.add();
    start_request();
    if (began_ns != 0) start_ns_ = began_ns;
    refusal_ = reason;
    linger_ = true;
    // Copied before the write (rare: a refusal may allocate): `head` is a view into buf_.
    const std::string_view line = head.substr(0, std::min(head.find_first_of("\r\n"), head.size()));
    const std::size_t sp = line.find(' ');
    std::string method, target;
    if (sp != std::string_view::npos && sp <= 32) {
      method = line.substr(0, sp);
      const std::string_view rest = line.substr(sp + 1);
      // At most 2 KiB of it in the log line (found in review: a header bomb's made a 6 MiB line).
      target = rest.substr(0, std::min({rest.find(' '), rest.size(), std::size_t{2048}}));
    }
    std::string body(reason);
    body.push_back('\n');
    co_await respond_local(status, std::move(body), false);
    log_access(method, target);
    co_return head_result::answered;
  }

  // Bytes of the client's not yet read by wakegate: in the socket, or over TLS also decrypted
  // or received by OpenSSL.
  bool client_input_waiting() {
    beast::error_code ec;
    if (client_.available(ec) > 0 && !ec) return true;
    if constexpr (is_tls) {
      return SSL_has_pending(stream_.native_handle()) == 1;  // decrypted, or read ahead
    }
    return false;
  }

  // The next operation on a connection (client_dl_ or up_dl_) must end within `d`, and never
  // past the request's deadline.
  void arm(deadline_slot& slot, config::duration d) { arm(slot, d, now_ns()); }
  void arm(deadline_slot& slot, config::duration d, std::int64_t now) {
    w_.deadlines.arm(slot, std::min(now + ns(d), deadline_), now);
  }
  // Before a write of the instance's response to the client; its first write (`first`) also
  // marks when the response started going out (upstream_ms), with the same clock read.
  void arm_response_write(config::duration d, bool first) {
    const std::int64_t now = now_ns();
    if (first) answered_ns_ = now;
    arm(client_dl_, d, now);
  }
  bool past_deadline() const noexcept { return now_ns() >= deadline_; }
  // After a write of the response to the client: while the request body is still being read
  // (on its own slot), client_dl_ must not stay armed, as its expiry cancels the body's read too
  // (found in review).
  void wrote_client() noexcept {
    if (uploading_) deadline_sweeper::disarm(client_dl_);
  }
  // The wait for the instance's response header: response_header_timeout, or, while the request
  // body is still going out, only the request's deadline (the upload re-arms it when done).
  void arm_head_wait(const config::limits_config& limits) {
    head_pending_ = true;
    if (uploading_) w_.deadlines.arm(up_dl_, deadline_, now_ns());
    else {
      arm(up_dl_, limits.upstream_header_timeout);
      watch_hangup();
    }
  }
  // The request is all at the instance: a client that hangs up from here on, until the response
  // is complete, ends it (499, the instance connection closed), as in nginx. Seen by the deadline
  // sweep (proxy/deadline.hpp) within a second; forward's up_slot_guard stops the watch.
  void watch_hangup() { w_.deadlines.watch_hangup(up_dl_, client_.native_handle()); }

  // ------------------------------------------------------------------------------------------
  // One request. Returns whether the client connection may carry another.

  asio::awaitable<bool> handle_request() {
    auto& req = parser_->get();
    start_request();
    client_version_ = req.version();  // the request is rewritten to HTTP/1.1 for the instance

    // A body some servers would ignore (GET with Content-Length, ...) ends both connections.
    bool client_keep_alive = req.keep_alive() && !verdict_.close_after && !last_pipelined_;
    bool body_pending = !parser_->is_done();
    deadline_ = deadline_slot::never;

    // Answered by wakegate itself before reaching an app: refused, an ACME HTTP-01 answer or the
    // redirect to https (plain http), no app for the host, a body over the app's max_body. One
    // co_await for all of them: each co_await has slots of its own in this frame, which a held
    // request holds while it waits.
    plain_answer local;
    bool local_keep = false;
    scaler::app_ptr app;  // held, with its config, for the whole request, even across a reload
    std::shared_ptr<const config::app_config> cfg;
    if (auto chk = check_request(*parser_, verdict_); chk.status != 0) {
      w_.owner->stats().bad_requests.add();
      refusal_ = chk.reason;
      linger_ = true;
      local.status = chk.status;
      local.body.reserve(chk.reason.size() + 1);
      local.body.append(chk.reason).push_back('\n');
    } else if (!is_tls && (local = plain_http_answer(w_, req)).status != 0) {
      local_keep = client_keep_alive && !body_pending;
    } else {
      // Kept (or made) before anything can refuse the request: its answer's log line has it too.
      request_id_ = request_id_of(req, request_id_buf_);
      if (const route* r = w_.routes->find(req[http::field::host]); r == nullptr) {
        w_.owner->stats().unrouted.add();
        local_keep = client_keep_alive && !body_pending;
        const std::string_view host = req[http::field::host];
        local.status = 404;
        local.body.reserve(17 + host.size());
        local.body.append("no app for host ").append(host).push_back('\n');
      } else {
        app = r->app;
        cfg = r->cfg;
        app_name_ = app->name();
        // The app's HSTS on every response for it on https, wakegate's own answers (413, 502,
        // 503, 504) included.
        if constexpr (is_tls) hsts_ = format_hsts(cfg->hsts, hsts_buf_);
        if (cfg->settings.max_body != 0 && verdict_.framing == body_framing::length &&
            verdict_.content_length > cfg->settings.max_body) {
          w_.owner->stats().hit(limit_hit::body_size);
          linger_ = true;
          local.status = 413;
          local.body = "request body larger than " + std::to_string(cfg->settings.max_body) + " bytes\n";
        }
      }
    }
    if (local.status != 0) {
      co_await respond_local(local.status, std::move(local.body), local_keep, 0, local.location);
      if (app) count_request(*app);
      log_access(req);
      // Not after a write that failed part way (found in review: the answers to the requests
      // pipelined behind a cut one went out after its partial bytes).
      co_return local_keep && !client_gone_ && !w_.draining;
    }

    if (cfg->settings.request_timeout.count() > 0)
      deadline_ = now_ns() + ns(cfg->settings.request_timeout);
    max_body_ = cfg->settings.max_body;
    body_fail_ = body_fail::none;

    // In flight from routing until the response ends (held time included).
    app->meter.add(+1, start_ns_);
    struct in_flight_guard {
      scaler::app& a;
      std::int64_t& done;  // when the response ended (forward sets it), else now
      ~in_flight_guard() {
        if (done == 0) done = now_ns();
        a.meter.add(-1, done);
      }
    };
    bool keep = false;
    scaler::instance_ptr inst;  // outlives the access log line, which reads instance_id_ (a view into it)
    {
      in_flight_guard ifg{*app, done_ns_};
      int max_c = cfg->settings.max_concurrency;
      // Upgrade (WebSocket): a GET without a body asking to switch protocols keeps its Upgrade.
      upgrade_ = req.version() == 11 && req.method() == http::verb::get && parser_->is_done() && wants_upgrade(req);

      // Fast path: a ready instance with room and nobody queued ahead of us.
      if (app->queued.load(std::memory_order_relaxed) == 0) inst = scaler::acquire_least_loaded(app->ready_view(), max_c);
      // An instance that refuses the connection has sent nothing: the request waits for another
      // one (the control plane replaces it) instead of failing, a bounded number of times; so
      // does an idempotent request the instance dropped unanswered (forward).
      std::weak_ptr<scaler::instance> handed_back;  // the instance that dropped or refused it
      for (int unreachable = 0;; ++unreachable) {
        if (!inst) {
          held_ = true;
          auto t0 = now_ns();
          inst = co_await hold(app, *cfg, cfg->settings.queue_timeout - std::chrono::nanoseconds(held_ns_),
                               std::move(handed_back));
          if (held_) held_ns_ += now_ns() - t0;
          if (!inst) break;  // answered 503 with Connection: close, or the client left
        }
        auto k = co_await forward(app, inst, client_keep_alive, unreachable < max_redispatch);
        if (k) {
          keep = *k;
          break;
        }
        instance_id_ = {};  // a view into the instance, which may go away now
        handed_back = inst;
        inst.reset();
      }
    }  // out of flight before counted: a counted request never still shows in flight
    count_request(*app);
    log_access(req);
    co_return keep && !w_.draining;
  }

  static constexpr int max_redispatch = 2;

  // A routed request's answer in the app's metrics: every one in both requests_total and the
  // duration histogram (found by black-box testing: 413s were missing from the histogram).
  void count_request(scaler::app& app) {
    if (done_ns_ == 0) done_ns_ = now_ns();
    app.stats.requests.add(static_cast<int>(status_));
    app.stats.request_duration.observe(static_cast<double>(done_ns_ - start_ns_) / 1e9);
    if (held_) app.stats.queue_wait.observe(static_cast<double>(held_ns_) / 1e9);
    if (answered_ns_ != 0) app.stats.upstream_response.observe(static_cast<double>(answered_ns_ - sent_ns_) / 1e9);
  }

  // Forwards the request to `inst`, whose capacity it holds until the response ends. nullopt:
  // `may_redispatch` allowed handing the request back to be held for another instance, because
  // the instance could not be reached, or (once per request, for an idempotent request without a
  // body) it closed the connection without answering.
  asio::awaitable<std::optional<bool>> forward(const scaler::app_ptr& app, const scaler::instance_ptr& inst,
                                               bool client_keep_alive, bool may_redispatch) {
    auto& req = parser_->get();
    instance_id_ = inst->id;
    struct capacity_guard {
      server& srv;
      const scaler::app_ptr& a;
      const scaler::instance_ptr& i;
      // Also run when a stopped thread's connections are destroyed at exit, by then without
      // a control plane (server::detach).
      ~capacity_guard() {
        if (auto* control = srv.attached_control()) control->release(a, i);
      }
    } cg{*w_.owner, app, inst};

    // An HTTP/1.0 client gets no 1xx: its expectation is ignored (RFC 9110 10.1.1, 15.2).
    if (!parser_->is_done() && client_version_ == 11)
      if (auto expect = req.find(http::field::expect); expect != req.end())
        // Answer 100-continue ourselves: the instance is chosen, the body may come.
        if (iequals(expect->value(), "100-continue") && !co_await send_continue()) co_return false;
    // Expect is not forwarded (append_forward_request)

    // Every way this ends in an error response of ours goes through the one co_await at the end:
    // each co_await with its temporaries takes room in the coroutine frame, and this frame must
    // stay under what Asio recycles (about 1 KiB) for a request not to cost an allocation.
    unsigned fail_status = 502;
    std::string fail_why;

    if (verdict_.framing == body_framing::chunked)  // to notice trailer fields added while reading the body
      forward_fields_ = static_cast<std::size_t>(std::distance(req.begin(), req.end()));
    bool retryable = idempotent(req.method()) && parser_->is_done();
    for (int attempt = 0;; ++attempt) {
      std::int64_t now = now_ns();
      // The retry goes out on a new connection: the pool may hold more that the instance closed.
      auto up = attempt == 0 ? take_connection(*inst, !retryable, now) : std::nullopt;
      bool reused = up.has_value();
      struct up_slot_guard {  // the slot watches this connection while it is in use here
        deadline_slot& s;
        ~up_slot_guard() {
          s.socket = nullptr;
          deadline_sweeper::disarm(s);
          deadline_sweeper::unwatch_hangup(s);
        }
      } usg{up_dl_};
      if (!up) up.emplace(client_.get_executor());
      up_dl_.socket = &*up;
      if (!reused) {
        arm(up_dl_, w_.opts->limits.upstream_connect_timeout, now);
        auto [ec] = co_await up->async_connect(inst->endpoint, tok);
        const bool timeout = up_dl_.timed_out(ec);
        if (ec) {
          if (timeout && w_.cut) {  // shutdown cut it: no limit ran out, and the instance is not at fault
            cut_by_shutdown(*inst, fail_status, fail_why);
            break;
          }
          if (timeout) w_.owner->stats().hit(past_deadline() ? limit_hit::request_timeout : limit_hit::upstream_connect_timeout);
          std::string why = timeout ? "connect timeout" : "connect: " + ec.message();
          // Only what says the instance is gone blames it; wakegate's own shortage (no file
          // descriptors, ports or buffers) must not take the fleet down with it.
          bool instance_fault = timeout || ec == asio::error::connection_refused ||
                                ec == asio::error::connection_reset || ec == asio::error::host_unreachable ||
                                ec == asio::error::network_unreachable;
          if (!instance_fault) {
            fail_why = "cannot connect to instance " + inst->id + ": " + why;
            break;
          }
          w_.owner->control().post_instance_failed(app, inst, why);
          if (may_redispatch) {
            log::warn("instance unreachable, request held for another",
                      {{"app", app_name_}, {"instance", inst->id}, {"error", why}});
            co_return std::nullopt;
          }
          fail_why = "instance " + inst->id + " unreachable: " + why;
          break;
        }
        beast::error_code ignored;
        up->set_option(tcp::no_delay(true), ignored);
        now = now_ns();
      }

      exchange_result result;
      sent_ns_ = now;
      if (parser_->is_done()) {
        // No body (the common case): the head in one write, then the response. Written here
        // rather than through exchange and send_request: two coroutine frames less per request.
        {
          head_buffer head_text;
          append_forward_request(req, {client_ip_, is_tls ? "https" : "http"}, request_id_, verdict_.close_after,
                                 upgrade_, head_text.text());
          arm(up_dl_, w_.opts->limits.io_timeout, now);
          auto [ec, n] = co_await asio::async_write(*up, asio::buffer(head_text.text()), tok);
          if (ec) {
            result.failed = up_dl_.timed_out(ec) ? failure::upstream_timeout : failure::upstream_io;
            result.write_stalled = result.failed == failure::upstream_timeout;
            result.detail = ec.message();
          }
        }
        if (result.failed == failure::none) co_await relay_response(*up, result, client_keep_alive);
      } else {
        result = co_await exchange(*up, client_keep_alive);
      }
      if (result.failed == failure::none) {
        done_ns_ = now_ns();
        if (inst->io_failures.load(std::memory_order_relaxed) != 0) inst->io_failures.store(0, std::memory_order_relaxed);
        if (result.upstream_reusable && !verdict_.close_after && inst->accepting.load(std::memory_order_relaxed)) {
          auto& pool = inst->pools[this_shard];
          if (pool.size() < w_.opts->limits.upstream_idle_per_instance)  // parked when its response was read
            pool.push_back(scaler::idle_connection{std::move(*up), done_ns_});
        }
        co_return result.client_keep_alive;
      }
      if (result.failed != failure::none && up_dl_.hung_up) {
        // The client hung up while the instance worked on its request: the sweep cancelled the
        // instance's side, and the connection closes with `up`. Not the instance's fault.
        result.failed = failure::client;
        if (!result.response_started) {
          status_ = 499;
          error_ = "the client closed the connection while the instance was answering";
        }
      }
      if (result.failed == failure::client) {
        if (!result.response_started && body_fail_ != body_fail::none)
          co_return co_await refuse_body();
        if (result.response_started && body_fail_ == body_fail::timeout && past_deadline()) {
          // The body's read has min(io_timeout, request_timeout): the request's deadline it was
          // (found in review: logged as io_timeout, not counted), answered 504 as refuse_body does.
          w_.owner->stats().hit(limit_hit::request_timeout);
          status_ = 504;
          note_cut("request_timeout passed while the request body was still coming");
        } else if (result.response_started && body_fail_ != body_fail::none) {
          if (body_fail_ == body_fail::timeout) w_.owner->stats().hit(limit_hit::io_timeout);
          note_cut(body_fail_ == body_fail::timeout     ? "the request body stopped coming for io_timeout"
                   : body_fail_ == body_fail::too_large ? "the request body grew past max_body"
                                                        : "bad request body");
        } else if (client_dl_.expired && !w_.cut) {
          // A write to the client stalled: its deadline is min(io_timeout, request_timeout).
          const bool request_deadline = past_deadline();
          w_.owner->stats().hit(request_deadline ? limit_hit::request_timeout : limit_hit::io_timeout);
          // The client's side of the response failed (found by black-box testing: logged as a
          // clean answer).
          if (result.response_started)
            note_cut(request_deadline ? "request_timeout passed" : "the client read nothing for io_timeout");
        } else if (result.response_started) {
          note_cut(w_.cut ? "wakegate is shutting down" : "the client closed the connection");
        }
        client_gone_ = true;
        co_return false;
      }
      // A reused connection that the instance had closed: nothing was answered, so an
      // idempotent request without a body is safe to send once more on a fresh connection.
      if (reused && retryable && !result.answer_started && !result.response_started && attempt == 0 &&
          result.failed == failure::upstream_io)
        continue;
      if (result.failed == failure::upstream_timeout && w_.cut) {
        // Cut by the shutdown: no limit ran out.
      } else if (result.failed == failure::upstream_timeout && past_deadline()) {
        w_.owner->stats().hit(limit_hit::request_timeout);
      } else if (result.failed == failure::upstream_timeout && !result.write_stalled && head_pending_) {
        // No whole response head (a part of one, or after an interim 1xx, included).
        w_.owner->stats().hit(limit_hit::response_header_timeout);
      } else if (result.failed == failure::upstream_timeout) {
        // The instance stopped reading the request, or stopped sending its response's body.
        w_.owner->stats().hit(limit_hit::io_timeout);
      }
      if (result.response_started) {
        status_ = 502;
        if (w_.cut) note_cut("wakegate is shutting down");
        else if (result.failed == failure::upstream_timeout)
          note_cut(past_deadline() ? "request_timeout passed" : "the instance sent nothing for io_timeout");
        else note_cut("instance " + inst->id + ": " + result.detail);
        if (result.failed != failure::upstream_timeout) blame_dropped(app, inst, "connection lost mid-response");
        // The client got part of a response: only closing tells it, and over TLS without
        // close_notify, which would say that a body read to the close is complete (RFC 9112
        // 9.8; found by black-box testing: an HTTP/1.0 client could not tell).
        response_cut_ = true;
        co_return false;
      }
      if (result.failed == failure::upstream_timeout) {
        if (w_.cut) {
          cut_by_shutdown(*inst, fail_status, fail_why);
          break;
        }
        fail_status = 504;
        fail_why = "instance " + inst->id +
                   (result.write_stalled && !past_deadline() ? " stopped reading the request for io_timeout"
                    : result.answer_started                  ? " stopped sending its response"
                                                             : " did not answer in time");
        break;
      }
      // A reused connection closing is routine keep-alive churn, not a broken instance.
      if (result.failed == failure::upstream_io && result.answer_started)
        blame_dropped(app, inst, "connection lost mid-response");
      else if (result.failed == failure::upstream_io && !reused) {
        blame_dropped(app, inst, "connection lost before the response");
        // Nothing was answered: an idempotent request without a body goes to another instance,
        // once (a request that kills each instance it reaches must not take down the fleet).
        if (retryable && may_redispatch && !retried_after_drop_) {
          retried_after_drop_ = true;
          log::warn("instance dropped the connection before answering, request held for another",
                    {{"app", app_name_}, {"instance", inst->id}, {"error", result.detail}});
          co_return std::nullopt;
        }
      }
      fail_why = "instance " + inst->id + " failed: " + result.detail;
      break;
    }
    co_return co_await fail_upstream(fail_status, fail_why, client_keep_alive);
  }

  // The access log's `error` for a response cut after its head went out: its status is
  // wakegate's verdict (502, or the request body's 408/413/400), the client saw the instance's.
  void note_cut(std::string_view why) {
    error_ = "response cut after the instance's " + std::to_string(instance_status_) + " head: ";
    error_ += why;
  }

  // A request that server::cut_all ended at shutdown: wakegate's doing, not the instance's (found
  // by black-box testing: the answer and the log blamed a healthy instance). 504, as for any
  // request cut with nothing of its response sent.
  static void cut_by_shutdown(const scaler::instance& inst, unsigned& status, std::string& why) {
    status = 504;
    why = "wakegate is shutting down: the request was cut before instance " + inst.id + " answered";
  }

  // The request body failed on the client's side before the response started: answered, and
  // closed (lingering: body bytes may follow). 413 past max_body, 400 for invalid chunked framing,
  // 408 when the client sent nothing for io_timeout, 504 at request_timeout (found by black-box
  // testing: the two timeouts closed the connection without an answer). Always false.
  asio::awaitable<bool> refuse_body() {
    linger_ = true;
    if (body_fail_ == body_fail::too_large) {
      w_.owner->stats().hit(limit_hit::body_size);
      refusal_ = "request body too large";
      co_await respond_too_large(max_body_);
    } else if (body_fail_ == body_fail::bad) {
      w_.owner->stats().bad_requests.add();
      refusal_ = "bad request body";
      co_await respond_local(400, "bad request body (invalid chunked framing, or trailer fields)\n", false);
    } else if (past_deadline()) {
      w_.owner->stats().hit(limit_hit::request_timeout);
      refusal_ = "request timeout: the request body did not arrive in time";
      co_await respond_local(504, "request timeout: the request body did not arrive in time\n", false);
    } else {
      w_.owner->stats().hit(limit_hit::io_timeout);
      refusal_ = "request body timeout";
      co_await respond_local(408, "request body timeout: nothing received for io_timeout\n", false);
    }
    co_return false;
  }

  // The instance dropped this exchange's connection: it is failed (stopped and replaced, its
  // requests in flight cut) only at the io_failure_limit-th in a row (scaler/instance.hpp).
  void blame_dropped(const scaler::app_ptr& app, const scaler::instance_ptr& inst, std::string_view what) {
    const auto n = inst->io_failures.fetch_add(1, std::memory_order_relaxed) + 1;
    if (n == scaler::instance::io_failure_limit)
      w_.owner->control().post_instance_failed(app, inst, std::string(what) + ", " + std::to_string(n) + " times in a row");
  }

  // Answers an Expect: 100-continue; false: the client went away.
  asio::awaitable<bool> send_continue() {
    static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
    arm(client_dl_, w_.opts->limits.io_timeout);
    auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(cont), tok);
    // Not left armed: the body's reads that follow have their own slot on this socket, and this
    // one's expiry would cancel them (found in review: an upload was cut at io_timeout after the 100).
    deadline_sweeper::disarm(client_dl_);
    if (!ec) co_return true;
    client_gone_ = true;
    status_ = 499;
    co_return false;
  }

  // Waits in the app's queue until the control plane grants an instance, the queue timeout
  // passes, the app fails to start, or the client hangs up. nullptr: status_ says why (0 = gone).
  // `budget`: what is left of the app's queue_timeout (a redispatched request waited already).
  asio::awaitable<scaler::instance_ptr> hold(const scaler::app_ptr& app, const config::app_config& cfg,
                                             std::chrono::nanoseconds budget, std::weak_ptr<scaler::instance> avoid) {
    auto w = std::make_shared<scaler::waiter>(w_.ioc.get_executor());
    // Held before (handed back by an instance): overdue counts the request's whole wait.
    w->enqueued_at -= std::chrono::nanoseconds(held_ns_);
    if (!avoid.expired()) w->avoid_until = steady::now() + scaler::waiter::avoid_grace;
    w->avoid = std::move(avoid);
    app->queued.fetch_add(1, std::memory_order_relaxed);
    auto& control = w_.owner->control();
    control.post_enqueue(app, w);

    // While held, keep reading what the client sends (the start of its body, or EOF when it
    // hangs up) into the connection buffer, up to its limit. That read ends when the control
    // plane decides (scaler::wake cancels it) or the queue timeout passes: the timeout is the
    // client slot's deadline, whose sweep cancels the read too. No timer of its own: a held
    // request costs only its frames and the waiter.
    auto& sock = held_reader();
    auto now = now_ns();
    const std::int64_t queue_deadline = now + std::max<std::int64_t>(budget.count(), 0);
    w_.deadlines.arm(client_dl_, std::min(queue_deadline, deadline_), now);
    struct disarm_at_exit {
      deadline_slot& s;
      ~disarm_at_exit() { deadline_sweeper::disarm(s); }
    } dae{client_dl_};
    while (!client_dl_.expired && w->state.load(std::memory_order_acquire) == scaler::waiter::waiting) {
      beast::error_code ec;
      w->held_socket = &client_;
      if (buf_.size() >= buf_.max_size()) {
        ec = co_await wait_for_error();
      } else {
        // Nothing buffered (a request without a body, the usual held request): the buffer is
        // given back and the read takes at most 16 bytes, enough to see the client hang up; a
        // held request then holds no buffer. Bytes that do come (a body) are kept, and the
        // buffer grows for them.
        std::size_t space;
        if (buf_.size() == 0) {
          buf_.shrink_to_fit();
          space = 16;
        } else {
          space = read_space();
        }
        auto [e, n] = co_await sock.async_read_some(buf_.prepare(space), read_tok<std::decay_t<decltype(sock)>>);
        ec = e;
        if (!e) buf_.commit(n);
        read_filled_ = n == space;
      }
      w->held_socket = nullptr;
      if (ec == asio::error::operation_aborted) break;  // decided, or the queue timeout passed
      if (ec) {  // the client went away: leave the queue and the counts at once
        int expected = scaler::waiter::waiting;
        if (w->state.compare_exchange_strong(expected, scaler::waiter::cancelled)) {
          control.post_cancel(app, w);
          client_gone_ = true;
          status_ = 499;
          co_return nullptr;
        }
        client_gone_ = true;  // granted meanwhile: release below
        break;
      }
    }

    // Not held to the end: answered 503 with this body, by one co_await (each co_await has slots
    // of its own in this frame, which every held request holds).
    std::string answer;
    int retry_after = 0;
    int st = w->state.load(std::memory_order_acquire);
    if (st == scaler::waiter::waiting) {
      int expected = scaler::waiter::waiting;
      if (w->state.compare_exchange_strong(expected, scaler::waiter::cancelled)) {
        control.post_cancel(app, w);
        if (w_.cut) {  // the shutdown cut it, not a timeout
          answer = "wakegate is shutting down\n";
        } else if (deadline_ < queue_deadline) {  // the app's request_timeout came first (found by black-box testing)
          w_.owner->stats().hit(limit_hit::request_timeout);
          answer = hold_timeout_text(*app, "request_timeout", cfg.settings.request_timeout);
          retry_after = 1;
        } else {
          app->stats.rejected_timeout.add();
          answer = hold_timeout_text(*app, "queue_timeout", cfg.settings.queue_timeout);
          retry_after = 1;
        }
      } else {
        st = expected;
      }
    }
    if (answer.empty()) {
      if (st == scaler::waiter::granted) {
        if (client_gone_) {  // give back the capacity we were granted
          control.release(app, w->granted_instance);
          status_ = 499;
          co_return nullptr;
        }
        co_return w->granted_instance;
      }
      // failed: queue full, start failure, removal or shutdown
      if (w->failure == scaler::waiter::why::queue_full) {
        app->stats.rejected_full.add();
        // Refused, never queued: not a held request, nor a sample of the queue wait (found by
        // black-box testing), unless it was held before (handed back by an instance).
        if (held_ns_ == 0) held_ = false;
      }
      answer.reserve(w->error.size() + 1);
      answer.append(w->error).push_back('\n');
      retry_after = w->retry_after_seconds;
    }
    co_await respond_local(503, std::move(answer), false, retry_after);
    co_return nullptr;
  }

  // A held request whose buffer is full reads no more: a wait for an error stands in for its
  // read. That completes when the connection is reset or hung up both ways, so the client is
  // gone (connection_reset), or it is cancelled like the read. Not inline in hold: hold's frame
  // is part of every held request.
  asio::awaitable<beast::error_code> wait_for_error() {
    auto [ec] = co_await client_.async_wait(tcp::socket::wait_error, tok);
    co_return ec ? ec : asio::error::connection_reset;
  }

  // ------------------------------------------------------------------------------------------
  // Upstream exchange

  std::optional<tcp::socket> take_connection(scaler::instance& inst, bool must_be_alive, std::int64_t now) {
    auto& pool = inst.pools[this_shard];
    auto max_idle = std::chrono::duration_cast<std::chrono::nanoseconds>(w_.opts->limits.upstream_idle_timeout).count();
    while (!pool.empty()) {
      auto c = std::move(pool.back());
      pool.pop_back();
      if (now - c.idle_since_ns > max_idle) continue;
      // Bytes, a FIN or a reset that came while the connection sat idle (a keep-alive timeout's
      // 408, an extra response) answer no request of ours: such a connection is not reused
      // (proxy/idle_watch.hpp). A request that cannot be retried also looks at the socket itself,
      // for a close the event loop has not handled yet.
      if (idle_watch::input_since_park(c.socket) || (must_be_alive && idle_watch::input_now(c.socket))) continue;
      idle_watch::reuse(c.socket);
      return std::move(c.socket);
    }
    return std::nullopt;
  }

  struct exchange_result {
    failure failed = failure::none;
    bool response_started = false;   // bytes of the response reached the client
    bool answer_started = false;     // the instance began its response (a retry would repeat it)
    bool upstream_reusable = false;
    bool client_keep_alive = false;
    bool write_stalled = false;      // the instance read nothing of the request for io_timeout
    std::string detail;
  };

  // Sends the request and relays the response. While a request body is still arriving the two
  // directions run at once, so an instance that answers (or echoes) before reading the whole
  // body neither deadlocks nor waits.
  // (A request without a body is sent by forward itself.)
  asio::awaitable<exchange_result> exchange(tcp::socket& up, bool client_keep_alive) {
    exchange_result sent, got;
    bool upload_over = false, download_over = false;
    bool stopped_upload = false;  // the download ended first and stopped the upload
    upload_stop_ = false;
    uploading_ = true;
    head_pending_ = false;
    // The upload's own deadlines: the download arms up_dl_ (response header, body reads) and
    // client_dl_ (writes) meanwhile, and neither may move the other's.
    deadline_slot client_read, up_write;
    deadline_guard client_read_guard(w_.deadlines, client_read, &client_);
    deadline_guard up_write_guard(w_.deadlines, up_write, &up);
    auto upload = [&]() -> asio::awaitable<void> {
      co_await send_request(up, sent, client_read, up_write);
      upload_over = true;
      uploading_ = false;
      if (head_pending_ && sent.failed == failure::none) arm(up_dl_, w_.opts->limits.upstream_header_timeout);
      if (sent.failed == failure::none && !download_over) watch_hangup();
      beast::error_code ignored;
      // The request did not get through: the response is not awaited any more. Closed, not only
      // cancelled: a cancel misses a download between two reads, which would then wait for a
      // response the instance never sends (it still waits for the body).
      if (sent.failed != failure::none && !download_over) up.close(ignored);
    };
    auto download = [&]() -> asio::awaitable<void> {
      co_await relay_response(up, got, client_keep_alive);
      download_over = true;
      beast::error_code ignored;
      // Answered before the body was all read: stop the upload, whether it waits on the client
      // or on an instance that no longer reads (neither connection is reused after this).
      if (!upload_over) {
        stopped_upload = true;
        upload_stop_ = true;  // a client read that already completed must not start another
        client_.cancel(ignored);
        up.cancel(ignored);
      }
    };
    co_await (upload() && download());
    // The client went away: whatever the download saw after that is not the instance's fault.
    // Unless the download failed first and stopped the upload itself (found in review: a
    // response cut during an upload was logged as the instance's status, with no error).
    if (sent.failed == failure::client && got.failed != failure::none && !stopped_upload) {
      got.failed = failure::client;
      co_return got;
    }
    if (got.failed != failure::none) {
      // The download ended because the upload failed (and closed the connection): the upload says why.
      if ((got.failed == failure::upstream_io || got.failed == failure::upstream_protocol) &&
          sent.failed != failure::none && !got.response_started) {
        const bool answered = got.answer_started;
        got = sent;
        got.answer_started = answered;
      }
      co_return got;
    }
    if (sent.failed != failure::none || !parser_->is_done()) {
      // The response is complete but the request body is not: neither side can be reused.
      got.upstream_reusable = false;
      got.client_keep_alive = false;
    }
    co_return got;
  }

  // The request body, read from the client (deadlines: `client_read`) and written to the
  // instance (`up_write`) as it arrives.
  asio::awaitable<void> send_request(tcp::socket& up, exchange_result& res, deadline_slot& client_read,
                                     deadline_slot& up_write) {
    auto opts = w_.opts;  // a reload may replace w_.opts while this request runs
    const auto& limits = opts->limits;
    auto& req = parser_->get();
    // Request: the head goes out with the first body bytes (or alone), the body as it arrives.
    // The head is written out before any body byte is read, so trailer fields Beast adds to the
    // header later never reach the instance; they are refused all the same (below).
    head_buffer head_text;
    append_forward_request(req, {client_ip_, is_tls ? "https" : "http"}, request_id_, verdict_.close_after, upgrade_,
                           head_text.text());
    std::string_view head = head_text.text();
    const bool chunked = verdict_.framing == body_framing::chunked;  // all Transfer-Encoding lines (req.chunked() reads the first)
    parser_->eager(false);  // as for responses (relay_parsed): a chunk must not wait for the next
    std::optional<relay_buffer> rb;
    for (;;) {
      const char* data = nullptr;
      std::size_t got = 0;
      if (upload_stop_) {  // the response is complete: the rest of the body is not wanted
        res.failed = failure::upstream_io;
        res.detail = "response complete before the request body";
        co_return;
      }
      if (!parser_->is_done()) {
        if (!rb) rb.emplace();
        req.body().data = rb->data();
        req.body().size = relay_chunk;
        arm(client_read, limits.io_timeout);
        const auto ec = co_await read_body_some(stream_, buf_, *parser_, &read_filled_);
        if (ec) {
          res.failed = failure::client;
          if ((ec != asio::error::operation_aborted || client_read.timed_out(ec)) && !upload_stop_) {
            bool gone = ec == http::error::partial_message || ec == http::error::end_of_stream ||
                        ec == asio::error::eof || ec == asio::error::connection_reset ||
                        ec == asio::ssl::error::stream_truncated;  // a TLS client closing without close_notify
            status_ = client_read.timed_out(ec) ? 408 : gone ? 499 : 400;
            // (found by black-box testing: this 499 alone had no `error` in the access log)
            if (gone) error_ = "the client closed the connection before its request body was all sent";
            body_fail_ = client_read.timed_out(ec) ? body_fail::timeout : gone ? body_fail::none : body_fail::bad;
          }
          co_return;
        }
        deadline_sweeper::disarm(client_read);  // as up_write below: the download may write to the client
        got = relay_chunk - req.body().size;
        // Beast adds trailer fields to the header: refused, as an instance could take them for
        // header fields (found by fuzzing).
        if (parser_->is_done() && verdict_.framing == body_framing::chunked &&
            static_cast<std::size_t>(std::distance(req.begin(), req.end())) != forward_fields_) {
          res.failed = failure::client;
          status_ = 400;
          body_fail_ = body_fail::bad;
          co_return;
        }
        bytes_in_ += got;
        if (max_body_ != 0 && bytes_in_ > max_body_) {  // a chunked body past the app's max_body
          body_fail_ = body_fail::too_large;
          res.failed = failure::client;
          status_ = 413;
          co_return;
        }
        data = rb->data();
      }
      const bool last = parser_->is_done();
      wire::gather g(head, data, got, chunked, last);
      if (g.size() > 0) {
        arm(up_write, limits.io_timeout);
        auto [ec, n] = co_await asio::async_write(up, g.buffers(), tok);
        if (ec) {
          res.failed = up_write.timed_out(ec) ? failure::upstream_timeout : failure::upstream_io;
          res.write_stalled = res.failed == failure::upstream_timeout;
          res.detail = ec.message();
          co_return;
        }
        // Done: while the next body bytes are awaited, this deadline must not cancel the
        // instance connection, whose response the download is reading (found by black-box
        // testing: a client stalled mid-body looked like an instance failure, and got no 408).
        deadline_sweeper::disarm(up_write);
        head = {};
      }
      if (last) break;
    }
  }

  asio::awaitable<void> relay_response(tcp::socket& up, exchange_result& res, bool client_keep_alive) {
    auto opts = w_.opts;  // a reload may replace w_.opts while this request runs
    const auto& limits = opts->limits;
    auto& req = parser_->get();
    // Response header (interim 1xx responses: relay_parsed forwards them).
    // The instance's bytes land here first; borrowed for this response only, so idle
    // connections hold no read buffer and every read can take a whole chunk.
    relay_buffer ubuf_mem;
    beast::flat_static_buffer_base ubuf(ubuf_mem.data(), relay_buffer_size);

    // Fast path (proxy/response_head.hpp): the head is read and scanned here, and a plain one (a
    // final status with a Content-Length) is relayed with no parser, its body counted through.
    // Anything else goes on to Beast below, with the bytes read so far.
    if (req.method() != http::verb::head) {
      arm_head_wait(limits);
      std::size_t scanned = 0;
      plain_response pr;
      std::size_t plain_end = 0;
      // A small plain response (head and body within hold_bytes) is read whole before the client
      // gets any of it: one write, one segment, however the instance split it (a head, then the
      // body, is common); should the instance fail before its end, the client gets a clean 502.
      // (One read site for the head and the held body: another would enlarge this frame past
      // Asio's recycling size.)
      std::size_t whole = 0;  // a held response's size; 0: not held
      for (;;) {
        std::string_view data(static_cast<const char*>(ubuf.data().data()), ubuf.size());
        if (whole == 0) {
          std::size_t end = data.empty() ? 0 : find_head_end(data, scanned);
          if (end == std::string_view::npos) break;  // a bare LF: Beast decides
          if (end != 0) {
            if (end > response_head_limit(limits) || !scan_plain_response(data.substr(0, end), pr)) break;
            plain_end = end;
            head_pending_ = false;
            // Not held while the client is still sending its body (it may wait for the answer),
            // nor when the instance asks for it to stream (X-Accel-Buffering: no).
            if (end > hold_bytes || pr.content_length > hold_bytes - end || !parser_->is_done() || pr.no_buffering)
              break;
            whole = end + static_cast<std::size_t>(pr.content_length);
          } else if (data.size() >= response_head_limit(limits) || ubuf.size() == ubuf.max_size()) {
            break;  // Beast: too large
          }
          scanned = data.size();
        }
        if (whole != 0) {
          if (ubuf.size() >= whole) break;
          arm(up_dl_, limits.io_timeout);  // between body reads, as below
        }
        auto [ec, n] = co_await up.async_read_some(ubuf.prepare(ubuf.max_size() - ubuf.size()), tok);
        if (ec) {
          res.answer_started = ubuf.size() > 0;  // the instance began to answer: not to be sent again
          if (whole != 0) {  // the head came, not all of the body
            res.failed = up_dl_.timed_out(ec) ? failure::upstream_timeout : failure::upstream_io;
          } else if (up_dl_.timed_out(ec)) {
            res.failed = failure::upstream_timeout;
          } else if (ec == asio::error::eof || ec == asio::error::connection_reset) {
            // The connection ended before a whole head: nothing of an answer. A drop before the
            // response, so an idempotent request may go to another instance (found by black-box
            // testing: an instance that died after part of its status line gave a 502).
            res.failed = failure::upstream_io;
            res.answer_started = false;
          } else {
            res.failed = failure::upstream_protocol;
          }
          res.detail = ec != asio::error::eof ? ec.message() : ubuf.size() == 0 ? "end of stream" : "partial message";
          co_return;
        }
        ubuf.commit(n);
      }
      if (plain_end != 0) {
        // The rewritten head with the body bytes already read in one write, then the rest of the
        // Content-Length (if not held) read into ubuf's memory (empty by then) and written.
        std::string_view head_in(static_cast<const char*>(ubuf.data().data()), plain_end);
        char* scratch = ubuf_mem.data();
        status_ = instance_status_ = pr.status;
        res.answer_started = true;  // a stall from here on is not "did not answer" (response_header_timeout)
        // Answered before the request body was all read: this connection closes after it.
        const bool keep = client_keep_alive && !w_.draining && parser_->is_done();
        res.client_keep_alive = keep;
        head_buffer head_text;
        append_plain_response(head_in, pr, keep, client_version_, hsts_, pr.has_date ? std::string_view{} : http_date_now(),
                              head_text.text());
        ubuf.consume(head_in.size());
        std::string_view head = head_text.text();
        std::uint64_t left = pr.content_length;
        const char* data = static_cast<const char*>(ubuf.data().data());
        auto n = static_cast<std::size_t>(std::min<std::uint64_t>(ubuf.size(), left));
        ubuf.consume(n);  // the memory stays as it is until the next read
        bool extra = false;  // bytes after the body came with its last read
        for (;;) {
          left -= n;
          bytes_out_ += n;
          // All of it read: whatever comes from here on answers no request (proxy/idle_watch.hpp),
          // also while the client write below waits.
          if (left == 0) idle_watch::park(up);
          wire::gather g(head, data, n, false, false);
          if (g.size() > 0) {
            arm_response_write(limits.io_timeout, !head.empty());
            auto [ec, written] = co_await asio::async_write(stream_, g.buffers(), tok);
            wrote_client();
            if (ec) {
              res.failed = failure::client;
              co_return;
            }
            res.response_started = true;
            head = {};
          }
          if (left == 0) break;
          arm(up_dl_, limits.io_timeout);
          // A whole chunk's room even for the last piece: bytes after the body then show here
          // rather than stay in the socket, their readiness event already spent.
          auto [ec, got] = co_await up.async_read_some(asio::buffer(scratch, relay_chunk), tok);
          if (ec) {
            res.failed = up_dl_.timed_out(ec) ? failure::upstream_timeout : failure::upstream_io;
            res.detail = ec == asio::error::eof ? "partial message" : ec.message();
            co_return;
          }
          data = scratch;
          n = static_cast<std::size_t>(std::min<std::uint64_t>(got, left));
          if (got > n) extra = true;
        }
        // Bytes after the body: the instance does not speak HTTP/1.1 as it should; not reused.
        res.upstream_reusable = pr.keep_alive && ubuf.size() == 0 && !extra;
        co_return;
      }
    }
    co_await relay_parsed(up, ubuf, limits, res, client_keep_alive);
  }

  // Any other response (a HEAD's, interim 1xx, chunked or EOF-framed, or a head the scan
  // refused) goes through Beast's parser, starting from the bytes already in `ubuf`. A coroutine
  // of its own so that the common path's frame stays small enough for Asio's frame recycling
  // (it keeps frames up to about 1 KiB): the parser alone takes half a kilobyte.
  // `limits`: relay_response's, which keeps them alive across a reload.
  asio::awaitable<void> relay_parsed(tcp::socket& up, beast::flat_static_buffer_base& ubuf,
                                     const config::limits_config& limits, exchange_result& res, bool client_keep_alive) {
    auto& req = parser_->get();
    std::optional<http::response_parser<http::buffer_body>> rpo;
    arm_head_wait(limits);  // once: interim responses do not extend it
    for (;;) {
      rpo.emplace();
      rpo->header_limit(static_cast<std::uint32_t>(response_head_limit(limits)));
      rpo->body_limit(boost::none);
      if (req.method() == http::verb::head) rpo->skip(true);
      auto [ec, n] = co_await http::async_read_header(up, ubuf, *rpo, tok);
      if (ec) {
        // The connection ending inside a head (partial_message) is a drop too: nothing of an
        // answer, so a HEAD may go to another instance, as a GET does on the path above (found in review).
        res.failed = up_dl_.timed_out(ec) ? failure::upstream_timeout
                     : (ec == http::error::end_of_stream || ec == http::error::partial_message ||
                        ec == asio::error::connection_reset || ec == asio::error::eof)
                         ? failure::upstream_io
                         : failure::upstream_protocol;
        res.detail = ec.message();
        co_return;
      }
      unsigned code = rpo->get().result_int();
      if (code < 100 || code > 599) {  // three digits, but no status (RFC 9110 15): relayed, it
        // could frame nothing or anything (found by black-box testing)
        res.failed = failure::upstream_protocol;
        res.detail = "invalid status code " + std::to_string(code);
        co_return;
      }
      if (code >= 200) {
        head_pending_ = false;
        break;
      }
      res.answer_started = true;  // the instance took the request: it is not sent again
      if (code != 101) {
        // An interim response (103 Early Hints, 102, a 100 of the instance's own) is forwarded
        // to an HTTP/1.1 client (RFC 9110 15.2: a proxy forwards the 1xx it did not ask for);
        // HTTP/1.0 clients get none. Then the next response head.
        if (client_version_ == 11) {
          auto& interim = rpo->get();
          strip_hop_by_hop(interim);
          interim.erase(http::field::transfer_encoding);  // a 1xx has no body, so no framing
          interim.erase(http::field::content_length);
          interim.version(11);
          head_buffer interim_text;
          wire::append_response_head(interim, interim_text.text());
          arm(client_dl_, limits.io_timeout);
          auto [wec, wn] = co_await asio::async_write(stream_, asio::buffer(interim_text.text()), tok);
          wrote_client();
          if (wec) {
            res.failed = failure::client;
            co_return;
          }
        }
        continue;
      }
      {
        if (upgrade_) {  // the request asked for it: relay the 101 head, then tunnel
          head_pending_ = false;
          deadline_sweeper::unwatch_hangup(up_dl_);  // the tunnel carries half-closes through
          co_await relay_switch(up, ubuf, rpo->get(), res);
          co_return;
        }
        res.failed = failure::upstream_protocol;  // Upgrade was stripped from this request
        res.detail = "unexpected 101 Switching Protocols";
        co_return;
      }
    }
    auto& rp = *rpo;
    res.answer_started = true;  // a final head came: a stall after it is not "did not answer"
    rp.eager(false);  // parse_buffered: a chunk must not wait for the next
    auto& resp = rp.get();
    status_ = instance_status_ = resp.result_int();
    bool bodyless = req.method() == http::verb::head || status_ == 204 || status_ == 304 || status_ < 200;
    // Transfer codings that do not end in chunked (`gzip`, `chunked, gzip`): the body would run
    // to the close, and with a Content-Length beside it readers frame it differently (RFC 9112
    // 6.3). Refused, as HAProxy does (found by black-box testing: it went out with both fields,
    // or chunked a second time).
    if (!bodyless && !rp.chunked() && resp.find(http::field::transfer_encoding) != resp.end()) {
      res.failed = failure::upstream_protocol;
      res.detail = "Transfer-Encoding without chunked as its last coding";
      co_return;
    }
    bool upstream_keep_alive = rp.keep_alive();  // every Connection field (resp.keep_alive() reads the first)
    strip_hop_by_hop(resp);
    if (resp.find(http::field::date) == resp.end()) resp.set(http::field::date, http_date_now());
    // Beast takes "Content-Length: 5, 5" and the same value in two fields (RFC 9110 8.6 allows
    // it): the client gets it once, so that it cannot read it otherwise than wakegate did.
    if (auto cl = rp.content_length(); cl && !rp.chunked())
      if (auto f = resp.find(http::field::content_length);
          resp.count(http::field::content_length) > 1 || f->value().find(',') != std::string_view::npos)
        resp.content_length(*cl);
    if constexpr (is_tls)
      if (!hsts_.empty()) resp.set(http::field::strict_transport_security, hsts_);
    bool keep = client_keep_alive && !w_.draining;
    const unsigned client_version = client_version_;
    resp.version(11);
    if (!bodyless && !rp.chunked() && !rp.content_length()) {
      // Body ends at EOF: re-frame it chunked for HTTP/1.1 clients, close for HTTP/1.0 ones.
      if (client_version == 11) resp.chunked(true);
      else keep = false;
    }
    if (client_version == 10 && rp.chunked()) {
      resp.chunked(false);
      keep = false;
    }
    if (status_ == 204) {  // no body, so no framing headers either (RFC 9110 8.6, RFC 9112 6.1)
      resp.erase(http::field::transfer_encoding);
      resp.erase(http::field::content_length);
    }
    // Answered before the request body was all read: this connection closes after it.
    if (!parser_->is_done()) keep = false;
    resp.keep_alive(keep);
    if (keep && client_version == 10) resp.set(http::field::connection, "keep-alive");
    res.client_keep_alive = keep;
    head_buffer head_text;
    wire::append_response_head(resp, head_text.text());
    std::string_view head = head_text.text();
    if (bodyless) {
      // Header only: a "chunked" HEAD/204/304 response has no last-chunk either.
      idle_watch::park(up);  // all read (proxy/idle_watch.hpp)
      arm_response_write(limits.io_timeout, true);
      auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(head), tok);
      wrote_client();
      if (ec) {
        res.failed = failure::client;
        co_return;
      }
      res.response_started = true;
      res.upstream_reusable = upstream_keep_alive && ubuf.size() == 0 && !rp.need_eof();
      co_return;
    }

    // Response body, streamed. The head goes out with the first body bytes when they are
    // already here, or on its own when the body has to be waited for.
    const bool chunked = resp.chunked();
    std::optional<relay_buffer> rb;
    for (;;) {
      const char* data = nullptr;
      std::size_t got = 0;
      if (!rp.is_done()) {
        if (!head.empty() && ubuf.size() == 0) {
          arm_response_write(limits.io_timeout, true);
          auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(head), tok);
          wrote_client();
          if (ec) {
            res.failed = failure::client;
            co_return;
          }
          res.response_started = true;
          head = {};
        }
        if (!rb) rb.emplace();
        resp.body().data = rb->data();
        resp.body().size = relay_chunk;
        arm(up_dl_, limits.io_timeout);
        const auto ec = co_await read_body_some(up, ubuf, rp);
        if (ec) {
          const bool framing = ec.category() == http::make_error_code(http::error::bad_line_ending).category() &&
                               ec != http::error::partial_message;
          res.failed = up_dl_.timed_out(ec) ? failure::upstream_timeout
                       : framing             ? failure::upstream_protocol
                                             : failure::upstream_io;
          res.detail = framing ? "invalid response body: " + ec.message() : ec.message();
          co_return;
        }
        got = relay_chunk - resp.body().size;
        bytes_out_ += got;
        data = rb->data();
      }
      const bool last = rp.is_done();
      if (last) idle_watch::park(up);  // all read (proxy/idle_watch.hpp)
      wire::gather g(head, data, got, chunked, last);
      if (g.size() > 0) {
        arm_response_write(limits.io_timeout, !head.empty());
        auto [ec, n] = co_await asio::async_write(stream_, g.buffers(), tok);
        wrote_client();
        if (ec) {
          res.failed = failure::client;
          co_return;
        }
        res.response_started = true;
        head = {};
      }
      if (last) break;
    }
    res.upstream_reusable = upstream_keep_alive && rp.is_done() && !rp.need_eof() && ubuf.size() == 0;
    co_return;
  }

  // 101 Switching Protocols to an upgrade request: the head goes to the client, then bytes flow
  // both ways (proxy/tunnel.hpp) within the request, so it stays in flight and holds its instance
  // capacity until the tunnel ends. Idle timeout: limits.io_timeout, no byte either way. Neither
  // connection is reused afterwards; request_timeout does not apply to the tunnel.
  template <class UpBuffer>
  asio::awaitable<void> relay_switch(tcp::socket& up, UpBuffer& ubuf, http::response_header<>& resp,
                                     exchange_result& res) {
    status_ = 101;
    res.upstream_reusable = false;
    res.client_keep_alive = false;
    std::string protocols(resp[http::field::upgrade]);
    strip_hop_by_hop(resp);
    resp.version(11);
    resp.set(http::field::connection, "upgrade");
    if (!protocols.empty()) resp.set(http::field::upgrade, protocols);
    head_buffer head_text;
    wire::append_response_head(resp, head_text.text());
    arm_response_write(w_.opts->limits.io_timeout, true);
    auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(head_text.text()), tok);
    if (ec) {
      res.failed = failure::client;
      co_return;
    }
    res.response_started = true;
    if (w_.draining) co_return;  // no new tunnel while shutting down
    deadline_sweeper::disarm(client_dl_);  // the tunnel's own watchdog times it out
    deadline_sweeper::disarm(up_dl_);
    w_.owner->stats().tunnels_open.add(1);
    auto t = co_await run_tunnel(stream_, client_, buf_, up, ubuf, w_.opts->limits.io_timeout, w_.tunnels);
    w_.owner->stats().tunnels_open.add(-1);
    if (t.idle_timeout) w_.owner->stats().hit(limit_hit::io_timeout);
    bytes_in_ += t.bytes_in;
    bytes_out_ += t.bytes_out;
  }

  asio::awaitable<bool> fail_upstream(unsigned status, const std::string& why, bool client_keep_alive) {
    log::warn("upstream failed", {{"app", app_name_}, {"instance", instance_id_}, {"status", status}, {"error", why}});
    bool keep = client_keep_alive && parser_->is_done();
    co_await respond_local(status, why + "\n", keep);
    co_return keep && !client_gone_;
  }

  // ------------------------------------------------------------------------------------------
  // wakegate's own responses and logging

  // A rare answer's body, built in this coroutine's frame: it then takes no room in the frames
  // of every request.
  asio::awaitable<void> respond_too_large(std::uint64_t max_body) {
    co_await respond_local(413, "request body larger than " + std::to_string(max_body) + " bytes\n", false);
  }
  // `what`: the limit that ran out while the request was held ("queue_timeout" or "request_timeout").
  static std::string hold_timeout_text(const scaler::app& app, std::string_view what, config::duration timeout) {
    return std::string(what == "queue_timeout" ? "queue timeout" : "request timeout") + ": no instance of app " +
           app.name() + " could take the request within its " + std::string(what) + " (" +
           std::to_string(timeout.count()) + "ms)\n";
  }

  // `retry_after`: seconds for a Retry-After field (0: none).
  asio::awaitable<void> respond_local(unsigned status, std::string body, bool keep_alive, int retry_after = 0,
                                      std::string_view location = {}) {
    status_ = status;
    if (status >= 400 && refusal_.empty()) error_.assign(body, 0, body.size() - (body.ends_with('\n') ? 1 : 0));
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::server, "wakegate");
    res.set(http::field::date, http_date_now());
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    if (retry_after > 0) res.set(http::field::retry_after, std::to_string(retry_after));
    if (!location.empty()) res.set(http::field::location, location);
    if (!hsts_.empty()) res.set(http::field::strict_transport_security, hsts_);
    res.keep_alive(keep_alive && !w_.draining);
    if (res.keep_alive() && client_version_ == 10) res.set(http::field::connection, "keep-alive");
    res.body() = std::move(body);
    res.prepare_payload();
    w_.deadlines.arm_after(client_dl_, w_.opts->limits.io_timeout);
    auto [ec, n] = co_await http::async_write(stream_, res, tok);
    if (!ec) {
      bytes_out_ += res.body().size();
      co_return;
    }
    client_gone_ = true;
    if (client_dl_.expired && !w_.cut) {
      // The client read nothing of it for io_timeout: counted, and the log says so after the
      // answer's own reason (found in review: it was neither).
      w_.owner->stats().hit(limit_hit::io_timeout);
      std::string why(!refusal_.empty() ? refusal_ : std::string_view(error_));
      why += why.empty() ? "" : "; ";
      why += "answer cut: the client read nothing for io_timeout";
      refusal_ = {};
      error_ = std::move(why);
    }
  }

  void log_access(const http::request<http::buffer_body>& req) { log_access(req.method_string(), req.target()); }
  void log_access(std::string_view method, std::string_view target) {
    if (!w_.opts->access_log) return;
    thread_local std::string line;
    line.clear();
    line += "{\"time\":\"";
    log::append_time_utc(line);
    line += "\",\"type\":\"access\",\"app\":";
    log::append_json_string(line, app_name_);
    line += ",\"method\":";
    log::append_json_string(line, method);
    line += ",\"path\":";
    log::append_json_string(line, target);
    line += ",\"status\":";
    line += std::to_string(status_);
    line += ",\"duration_ms\":";
    log::append_number(line, static_cast<double>((done_ns_ != 0 ? done_ns_ : now_ns()) - start_ns_) / 1e6, 3);
    line += ",\"instance\":";
    log::append_json_string(line, instance_id_);
    line += ",\"bytes_in\":";
    line += std::to_string(bytes_in_);
    line += ",\"bytes_out\":";
    line += std::to_string(bytes_out_);
    line += ",\"held\":";
    line += held_ ? "true" : "false";
    line += ",\"held_ms\":";
    log::append_number(line, static_cast<double>(held_ns_) / 1e6, 3);
    line += ",\"upstream_ms\":";
    if (answered_ns_ != 0) log::append_number(line, static_cast<double>(answered_ns_ - sent_ns_) / 1e6, 3);
    else line += "null";
    line += ",\"request_id\":";
    log::append_json_string(line, request_id_);
    line += ",\"client\":";
    log::append_json_string(line, client_ip_);
    if (!refusal_.empty() || !error_.empty()) {
      line += ",\"error\":";
      log::append_json_string(line, !refusal_.empty() ? refusal_ : std::string_view(error_));
    }
    line += "}\n";
    log::write_stderr(line);
  }

  auto& held_reader() {
    if constexpr (is_tls) return stream_;
    else return client_;
  }

  worker& w_;
  Stream stream_;
  tcp::socket& client_;  // the TCP layer of stream_: socket options, cancel, close
  deadline_slot client_dl_;  // timeouts of client_
  deadline_slot up_dl_;      // timeouts of the instance connection in use
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::buffer_body>> parser_;
  chunk_ext_check chunk_ext_check_;  // the chunked request parser's chunk-header callback
  std::string client_ip_;
  head_verdict verdict_;          // check_head's verdict on the current request
  std::size_t pipelined_ = 0;     // consecutive requests that arrived before their predecessor's response
  bool read_filled_ = false;      // the latest read into buf_ took all the room it had
  bool last_pipelined_ = false;   // max_pipelined reached: this request's response closes the connection
  bool linger_ = false;           // refused with request bytes possibly unread: lingering close
  std::int64_t deadline_ = deadline_slot::never;  // request_timeout (now_ns)
  std::uint64_t max_body_ = 0;
  std::size_t forward_fields_ = 0;  // header fields as forwarded (chunked requests)
  // Why the request body failed on the client's side (its own member: status_ may hold the
  // instance's status by then, found in review).
  enum class body_fail { none, too_large, bad, timeout } body_fail_ = body_fail::none;

  // Per request (reset in handle_request).
  std::int64_t start_ns_ = 0;
  std::int64_t done_ns_ = 0;  // when the response ended; 0 until then (the clock is read once for it)
  unsigned status_ = 0;
  std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
  bool held_ = false;
  bool retried_after_drop_ = false;  // sent once more after an instance dropped it unanswered
  std::string_view refusal_;          // why wakegate refused the request (static text), for the access log
  // Why wakegate answered itself (its answer's reason) or cut the response, for the access log's
  // `error` when refusal_ is empty. Built on those paths only.
  std::string error_;
  unsigned instance_status_ = 0;      // the status of the instance's response head, once it came
  bool client_gone_ = false;
  bool response_cut_ = false;  // a response ended short: the connection closes without close_notify
  std::int64_t held_ns_ = 0;
  std::int64_t sent_ns_ = 0;      // the request went to the instance (its last attempt)
  std::int64_t answered_ns_ = 0;  // the instance's response started going to the client; 0: none did
  unsigned client_version_ = 11;  // of the current request, as the client sent it
  bool upload_stop_ = false;      // set when the response completed before the request body
  // While the request body is still being sent the response header is not yet late: its
  // timeout (response_header_timeout) starts once the upload is over (found by black-box testing:
  // an upload longer than the timeout was cut with no answer while its bytes kept coming).
  bool uploading_ = false;
  bool head_pending_ = false;     // the download waits for the instance's response header
  bool upgrade_ = false;          // forwarded with Upgrade: a 101 answer is tunnelled
  std::string_view app_name_;
  std::string_view instance_id_;
  std::string_view request_id_;  // into the request's X-Request-Id, or request_id_buf_
  char request_id_buf_[32];
  // The Strict-Transport-Security value, formatted once per request on https only: plain http
  // connections carry no buffer for it.
  struct no_hsts_buffer {};
  using hsts_buffer = std::conditional_t<is_tls, char[40], no_hsts_buffer>;
  [[no_unique_address]] hsts_buffer hsts_buf_;
  std::string_view hsts_;
};

asio::awaitable<void> run_session(worker& w, tcp::socket socket) {
  return session<tcp::socket>::serve(w, std::move(socket), nullptr);
}

asio::awaitable<void> run_tls_session(worker& w, tcp::socket socket) {
  return session<tls_stream>::serve(w, std::move(socket), w.certs);
}

}  // namespace wakegate::proxy
