// Server TLS contexts: one SSL_CTX per certificate, built once with Mozilla's "intermediate"
// profile (TLS 1.2 and 1.3, AEAD ciphers, X25519/P-256/P-384, ALPN http/1.1, session cache and
// tickets), and the SNI choice between them. A cert_set is immutable: a reload builds a new one.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/ssl/context.hpp>

namespace wakegate::tls {

// ---- session tickets --------------------------------------------------------------------------

struct ticket_key {
  std::array<unsigned char, 16> name{};
  std::array<unsigned char, 32> aes{};   // AES-256-CBC
  std::array<unsigned char, 32> hmac{};  // HMAC-SHA256
};

// keys[0] encrypts new tickets; every key decrypts (tickets from before the last rotation).
struct ticket_keys {
  std::vector<ticket_key> keys;
};

// A fresh random key in front of the newest `keep - 1` keys of `previous` (may be null).
std::shared_ptr<const ticket_keys> rotate_ticket_keys(const ticket_keys* previous, std::size_t keep = 2);

// The keys the handshakes on the calling thread use; each io thread sets its own (no locks).
// The caller keeps `keys` alive until the next call.
void set_thread_ticket_keys(const ticket_keys* keys) noexcept;

// ---- certificates -----------------------------------------------------------------------------

// A certificate to serve, as PEM text.
struct certificate_source {
  std::string origin;  // where it came from, for logs: the cert file's path, or "acme:<host>"
  std::string cert_pem;  // leaf first, then the chain
  std::string key_pem;
};

struct certificate {
  std::string origin;
  std::vector<std::string> names;  // subjectAltNames, lower-case
  std::int64_t not_after = 0;      // Unix seconds
  std::unique_ptr<boost::asio::ssl::context> ctx;
};

class cert_set {
 public:
  // Builds one context per source; throws std::runtime_error naming the source that fails.
  // `default_name`: a name the default certificate (for clients without SNI, or with an unknown
  // name) covers; empty: the first source.
  static std::shared_ptr<const cert_set> build(const std::vector<certificate_source>& sources,
                                               std::string_view default_name = {});

  cert_set(const cert_set&) = delete;
  cert_set& operator=(const cert_set&) = delete;

  bool empty() const noexcept { return certs_.empty(); }
  boost::asio::ssl::context& default_context() const noexcept { return *certs_[default_].ctx; }
  // The certificate for a lower-case host name: exact name first, then "*.<parent>"; nullptr if none.
  const certificate* find(std::string_view host) const noexcept;
  bool covers(std::string_view host) const noexcept { return find(host) != nullptr; }
  const std::vector<certificate>& certificates() const noexcept { return certs_; }

 private:
  cert_set() = default;
  std::vector<certificate> certs_;
  std::vector<std::pair<std::string, std::size_t>> exact_;     // sorted by name
  std::vector<std::pair<std::string, std::size_t>> wildcard_;  // ".suffix" of "*.suffix", sorted
  std::size_t default_ = 0;
};

// The handshake of an SSL object from cert_set::default_context() was resumed (not full).
bool session_resumed(const void* native_ssl) noexcept;

}  // namespace wakegate::tls
