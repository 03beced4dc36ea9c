#include "tls/context.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "config/certificate.hpp"

namespace wakegate::tls {

namespace asio = boost::asio;

namespace {

// Mozilla "intermediate" (v5.7): TLS 1.2 ciphers; TLS 1.3 uses OpenSSL's default suites, which match.
constexpr const char* intermediate_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
constexpr const char* intermediate_suites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr const char* intermediate_groups = "X25519:P-256:P-384";
constexpr unsigned char session_id_context[] = "wakegate";
constexpr long session_timeout_s = 24 * 3600;
constexpr long session_cache_size = 20480;

thread_local const ticket_keys* thread_keys = nullptr;

// Fetched once: OpenSSL 3 looks algorithms up by name on every implicit fetch.
EVP_CIPHER* ticket_cipher() {
  static EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  return c;
}

int set_ticket_mac(EVP_MAC_CTX* hctx, const ticket_key& k) {
  static char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(k.hmac.data()), k.hmac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  return EVP_MAC_CTX_set_params(hctx, params);
}

int ticket_callback(SSL*, unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cctx, EVP_MAC_CTX* hctx,
                    int enc) {
  const ticket_keys* ring = thread_keys;
  if (ring == nullptr || ring->keys.empty()) return 0;  // no ticket issued / full handshake
  if (enc == 1) {
    const ticket_key& k = ring->keys.front();
    std::memcpy(key_name, k.name.data(), k.name.size());
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(ticket_cipher())) != 1) return -1;
    if (EVP_EncryptInit_ex2(cctx, ticket_cipher(), k.aes.data(), iv, nullptr) != 1) return -1;
    return set_ticket_mac(hctx, k) == 1 ? 1 : -1;
  }
  for (std::size_t i = 0; i < ring->keys.size(); ++i) {
    const ticket_key& k = ring->keys[i];
    if (std::memcmp(key_name, k.name.data(), k.name.size()) != 0) continue;
    if (EVP_DecryptInit_ex2(cctx, ticket_cipher(), k.aes.data(), iv, nullptr) != 1) return -1;
    if (set_ticket_mac(hctx, k) != 1) return -1;
    return i == 0 ? 1 : 2;  // 2: valid, but issue a ticket under the current key
  }
  return 0;  // unknown key (rotated out): full handshake
}

int alpn_callback(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                  void*) {
  static constexpr unsigned char ours[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, ours, sizeof ours, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;  // e.g. h2 only: go on without ALPN, as nginx does
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

int servername_callback(SSL* ssl, int*, void* arg) {
  const auto* set = static_cast<const cert_set*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
  char lowered[256];
  std::size_t n = 0;
  for (; name[n] != '\0' && n < sizeof lowered; ++n)
    lowered[n] = (name[n] >= 'A' && name[n] <= 'Z') ? static_cast<char>(name[n] - 'A' + 'a') : name[n];
  if (n == sizeof lowered) return SSL_TLSEXT_ERR_OK;
  if (n > 0 && lowered[n - 1] == '.') --n;  // "a.test." is a.test, as for routing (found by black-box testing)
  const certificate* c = set->find(std::string_view(lowered, n));
  if (c != nullptr && c->ctx->native_handle() != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, c->ctx->native_handle());
  return SSL_TLSEXT_ERR_OK;
}

std::unique_ptr<asio::ssl::context> make_context(const certificate_source& src) {
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_cipher_list(c, intermediate_ciphers) != 1 || SSL_CTX_set_ciphersuites(c, intermediate_suites) != 1 ||
      SSL_CTX_set1_groups_list(c, intermediate_groups) != 1)
    throw std::runtime_error("cannot set the TLS cipher profile");
  SSL_CTX_set_dh_auto(c, 1);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(c, session_cache_size);
  SSL_CTX_set_timeout(c, session_timeout_s);
  SSL_CTX_set_session_id_context(c, session_id_context, sizeof session_id_context - 1);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(c, ticket_callback);
  SSL_CTX_set_alpn_select_cb(c, alpn_callback, nullptr);
  SSL_CTX_set_default_passwd_cb(c, config::refuse_pass_phrase);  // never a prompt on the terminal
  boost::system::error_code ec;
  ctx->use_certificate_chain(asio::buffer(src.cert_pem), ec);
  if (ec) throw std::runtime_error(src.origin + ": certificate chain: " + ec.message());
  ctx->use_private_key(asio::buffer(src.key_pem), asio::ssl::context::pem, ec);
  if (ec) throw std::runtime_error(src.origin + ": private key: " + ec.message());
  if (SSL_CTX_check_private_key(c) != 1) throw std::runtime_error(src.origin + ": private key does not match the certificate");
  return ctx;
}

}  // namespace

std::shared_ptr<const ticket_keys> rotate_ticket_keys(const ticket_keys* previous, std::size_t keep) {
  auto next = std::make_shared<ticket_keys>();
  ticket_key k;
  if (RAND_bytes(k.name.data(), static_cast<int>(k.name.size())) != 1 ||
      RAND_bytes(k.aes.data(), static_cast<int>(k.aes.size())) != 1 ||
      RAND_bytes(k.hmac.data(), static_cast<int>(k.hmac.size())) != 1)
    throw std::runtime_error("RAND_bytes failed");
  next->keys.push_back(k);
  if (previous != nullptr)
    for (std::size_t i = 0; i < previous->keys.size() && next->keys.size() < keep; ++i)
      next->keys.push_back(previous->keys[i]);
  return next;
}

void set_thread_ticket_keys(const ticket_keys* keys) noexcept { thread_keys = keys; }

std::shared_ptr<const cert_set> cert_set::build(const std::vector<certificate_source>& sources,
                                                std::string_view default_name) {
  std::shared_ptr<cert_set> set(new cert_set());
  for (const auto& src : sources) {
    auto check = config::inspect_certificate_pem(src.cert_pem, src.key_pem);
    if (!check.info) throw std::runtime_error(src.origin + ": " + check.error);
    certificate c;
    c.origin = src.origin;
    c.names = std::move(check.info->names);
    c.not_after = check.info->not_after;
    c.ctx = make_context(src);
    SSL_CTX_set_tlsext_servername_callback(c.ctx->native_handle(), servername_callback);
    SSL_CTX_set_tlsext_servername_arg(c.ctx->native_handle(), set.get());
    set->certs_.push_back(std::move(c));
  }
  if (set->certs_.empty()) throw std::runtime_error("no certificate to serve");
  // Earlier certificates win a name that several cover.
  for (std::size_t i = 0; i < set->certs_.size(); ++i) {
    for (const auto& n : set->certs_[i].names) {
      if (n.starts_with("*.")) set->wildcard_.emplace_back(n.substr(1), i);
      else set->exact_.emplace_back(n, i);
    }
  }
  auto by_name = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::stable_sort(set->exact_.begin(), set->exact_.end(), by_name);
  std::stable_sort(set->wildcard_.begin(), set->wildcard_.end(), by_name);
  if (!default_name.empty()) {
    const certificate* d = set->find(default_name);
    if (d == nullptr) throw std::runtime_error("no certificate covers default_certificate " + std::string(default_name));
    set->default_ = static_cast<std::size_t>(d - set->certs_.data());
  }
  return set;
}

const certificate* cert_set::find(std::string_view host) const noexcept {
  auto lookup = [this](const std::vector<std::pair<std::string, std::size_t>>& v,
                       std::string_view key) -> const certificate* {
    auto it = std::lower_bound(v.begin(), v.end(), key, [](const auto& e, std::string_view k) { return e.first < k; });
    return it != v.end() && it->first == key ? &certs_[it->second] : nullptr;
  };
  if (host.starts_with("*.")) return lookup(wildcard_, host.substr(1));
  if (const certificate* c = lookup(exact_, host)) return c;
  auto dot = host.find('.');
  if (dot == std::string_view::npos || dot == 0) return nullptr;
  return lookup(wildcard_, host.substr(dot));
}

bool session_resumed(const void* native_ssl) noexcept {
  return SSL_session_reused(static_cast<SSL*>(const_cast<void*>(native_ssl))) == 1;
}

}  // namespace wakegate::tls
