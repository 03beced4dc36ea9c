// Automatic certificates (ACME, RFC 8555) for app hosts no certificate file covers. Runs on the
// control thread's io_context as one coroutine: orders one host at a time, answers HTTP-01 through
// the http listener (challenge answers are published to the proxy threads), stores the account
// key and each host's key and certificate under `storage` (directories 0700, files 0600), serves
// stored certificates at start without ordering again, and renews `renew_before` expiry, with
// exponential backoff after a failure.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/array.hpp>

#include "common/metrics.hpp"
#include "config/config.hpp"
#include "tls/challenges.hpp"
#include "tls/context.hpp"

typedef struct evp_pkey_st EVP_PKEY;

namespace wakegate::tls {

// ---- JOSE and key helpers (ECDSA P-256, ES256), public for the unit tests ----------------------

struct pkey_deleter {
  void operator()(EVP_PKEY* k) const noexcept;
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;

std::string base64url(std::string_view bytes);
pkey_ptr generate_p256_key();
std::string private_key_pem(EVP_PKEY* key);
pkey_ptr private_key_from_pem(std::string_view pem);  // null when it is no private key
// {"crv":"P-256","kty":"EC","x":"...","y":"..."}: members in the order RFC 7638 hashes them.
std::string jwk_json(EVP_PKEY* key);
std::string jwk_thumbprint(EVP_PKEY* key);  // base64url(SHA-256(jwk_json))
// Flattened JWS JSON: {"protected":..., "payload":..., "signature":...}; signature r||s (64 bytes).
std::string jws_sign(EVP_PKEY* key, std::string_view protected_json, std::string_view payload);
// DER PKCS#10 request for `host` (CN and subjectAltName DNS), signed by `key`.
std::string csr_der(EVP_PKEY* key, const std::string& host);

// ---- the client ---------------------------------------------------------------------------------

class acme_client {
 public:
  struct callbacks {
    std::function<void(const std::string& host, certificate_source)> certificate;  // obtained or loaded
    std::function<void(std::shared_ptr<const challenge_map>)> challenges;          // HTTP-01 answers
  };

  acme_client(boost::asio::io_context& ctx, config::acme_config cfg, callbacks cb);
  ~acme_client();

  // The hosts to hold certificates for (at start and on reload); starts the loop on first call.
  void set_hosts(std::vector<std::string> hosts);
  void write_metrics(metrics::text_writer& w) const;
  // /status: per host the certificate's expiry, the last failure and when the next try is.
  boost::json::array status() const;

 private:
  struct host_state {
    std::int64_t not_after = 0;     // of the certificate in service (0: none)
    std::int64_t obtained_at = 0;   // last successful order
    std::int64_t next_attempt = 0;  // after a failure (backoff)
    int failures = 0;
    bool storage_checked = false;
    std::string last_error;
  };
  struct http_result;

  void prepare_storage();  // throws std::runtime_error(reason)
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<void> order(const std::string& host);  // throws std::runtime_error(reason)
  boost::asio::awaitable<http_result> request(std::string_view method, const std::string& url, std::string body,
                                              std::string_view content_type, std::string_view accept);
  boost::asio::awaitable<http_result> post(const std::string& url, const std::string& payload,
                                           std::string_view accept = "application/json");
  boost::asio::awaitable<void> ensure_directory();
  boost::asio::awaitable<void> ensure_account();
  boost::asio::awaitable<void> pause(std::chrono::milliseconds d);
  void load_stored(const std::string& host, host_state& st);
  void publish_challenges();

  boost::asio::io_context& ctx_;
  config::acme_config cfg_;
  callbacks cb_;
  std::unique_ptr<boost::asio::ssl::context> client_ctx_;
  pkey_ptr account_key_;
  std::string thumbprint_;
  std::string account_url_;
  std::string nonce_;
  std::string new_nonce_url_, new_account_url_, new_order_url_;
  std::vector<std::string> hosts_;
  std::map<std::string, host_state> state_;
  challenge_map challenges_;
  boost::asio::steady_timer wake_;
  std::shared_ptr<bool> alive_;
  bool running_ = false;
  std::uint64_t orders_ok_ = 0, orders_failed_ = 0;
};

}  // namespace wakegate::tls
