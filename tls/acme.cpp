#include "tls/acme.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json.hpp>

#include "common/log.hpp"
#include "config/certificate.hpp"

namespace wakegate::tls {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

constexpr auto tok = asio::as_tuple(asio::use_awaitable);
constexpr auto io_timeout = std::chrono::seconds(30);
constexpr auto renew_check_interval = std::chrono::hours(1);
constexpr std::int64_t max_backoff_s = 24 * 3600;
constexpr int max_polls = 120;
constexpr int max_bad_nonce_retries = 5;
constexpr std::size_t max_response_bytes = 1 << 20;

std::int64_t now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }

std::string openssl_error(const char* what) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  std::string s = what;
  if (e != 0) s += std::string(": ") + ERR_reason_error_string(e);
  return s;
}

struct url_parts {
  std::string host, port, target;
};

url_parts parse_url(const std::string& url) {
  constexpr std::string_view scheme = "https://";
  if (!url.starts_with(scheme)) throw std::runtime_error("not an https URL: " + url);
  std::string_view rest = std::string_view(url).substr(scheme.size());
  auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  url_parts p;
  p.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (authority.starts_with('[')) {
    auto close = authority.find(']');
    p.host = std::string(authority.substr(1, close - 1));
    p.port = close + 1 < authority.size() ? std::string(authority.substr(close + 2)) : "443";
  } else {
    auto colon = authority.rfind(':');
    p.host = std::string(authority.substr(0, colon));
    p.port = colon == std::string_view::npos ? "443" : std::string(authority.substr(colon + 1));
  }
  return p;
}

// Writes a file readable by the owner only (temp file + rename).
void write_private_file(const fs::path& path, std::string_view content) {
  auto tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
  ::fchmod(fd, 0600);
  std::size_t off = 0;
  while (off < content.size()) {
    auto n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(err));
    }
    off += static_cast<std::size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  fs::rename(tmp, path);
}

void make_private_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create " + dir.string() + ": " + ec.message());
  if (::chmod(dir.c_str(), 0700) != 0) throw std::runtime_error("cannot chmod " + dir.string() + ": " + std::strerror(errno));
}

std::string json_str(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_string() ? std::string(it->value().as_string()) : std::string();
}

json::object parse_object(const std::string& body) {
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec || !v.is_object()) throw std::runtime_error("ACME server sent no JSON object");
  return std::move(v.as_object());
}

// "urn:...:badNonce: detail" from an RFC 7807 problem document, or the status.
std::string problem_text(unsigned status, const std::string& body) {
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    auto type = json_str(v.as_object(), "type");
    auto detail = json_str(v.as_object(), "detail");
    if (!type.empty() || !detail.empty()) return type + ": " + detail;
  }
  return "HTTP " + std::to_string(status);
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

// ---- JOSE ----------------------------------------------------------------------------------------

void pkey_deleter::operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }

std::string base64url(std::string_view bytes) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
  for (; i + 2 < bytes.size(); i += 3) {
    unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    unsigned v = byte(i) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
  } else if (i + 2 == bytes.size()) {
    unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
  }
  return out;
}

pkey_ptr generate_p256_key() {
  pkey_ptr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!k) throw std::runtime_error(openssl_error("cannot generate a P-256 key"));
  return k;
}

std::string private_key_pem(EVP_PKEY* key) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string pem(data, static_cast<std::size_t>(n));
  BIO_free(b);
  return pem;
}

pkey_ptr private_key_from_pem(std::string_view pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  pkey_ptr k(PEM_read_bio_PrivateKey(b, nullptr, config::refuse_pass_phrase, nullptr));
  BIO_free(b);
  ERR_clear_error();
  return k;
}

std::string jwk_json(EVP_PKEY* key) {
  auto coord = [key](const char* name) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) throw std::runtime_error(openssl_error("not an EC key"));
    unsigned char buf[32];
    BN_bn2binpad(bn, buf, sizeof buf);
    BN_free(bn);
    return base64url(std::string_view(reinterpret_cast<const char*>(buf), sizeof buf));
  };
  return R"({"crv":"P-256","kty":"EC","x":")" + coord(OSSL_PKEY_PARAM_EC_PUB_X) + R"(","y":")" +
         coord(OSSL_PKEY_PARAM_EC_PUB_Y) + R"("})";
}

std::string jwk_thumbprint(EVP_PKEY* key) {
  std::string jwk = jwk_json(key);
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(jwk.data(), jwk.size(), md, &len, EVP_sha256(), nullptr);
  return base64url(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::string jws_sign(EVP_PKEY* key, std::string_view protected_json, std::string_view payload) {
  std::string prot = base64url(protected_json);
  std::string pay = base64url(payload);
  std::string signing_input = prot + "." + pay;
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  std::size_t der_len = 0;
  std::string der;
  bool ok = EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestSign(md, nullptr, &der_len, reinterpret_cast<const unsigned char*>(signing_input.data()),
                           signing_input.size()) == 1;
  if (ok) {
    der.resize(der_len);
    ok = EVP_DigestSign(md, reinterpret_cast<unsigned char*>(der.data()), &der_len,
                        reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) == 1;
    der.resize(der_len);
  }
  EVP_MD_CTX_free(md);
  if (!ok) throw std::runtime_error(openssl_error("cannot sign"));
  // JWS wants the raw r||s, not the DER ECDSA-Sig-Value.
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  if (sig == nullptr) throw std::runtime_error(openssl_error("bad ECDSA signature"));
  unsigned char raw[64];
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32);
  ECDSA_SIG_free(sig);
  std::string out = R"({"protected":")" + prot + R"(","payload":")" + pay + R"(","signature":")" +
                    base64url(std::string_view(reinterpret_cast<const char*>(raw), sizeof raw)) + R"("})";
  return out;
}

std::string csr_der(EVP_PKEY* key, const std::string& host) {
  X509_REQ* req = X509_REQ_new();
  std::string san = "DNS:" + host;
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
  bool ok = ext != nullptr && X509_REQ_set_version(req, 0) == 1 &&
            X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
                                       reinterpret_cast<const unsigned char*>(host.c_str()), -1, -1, 0) == 1 &&
            X509_REQ_set_pubkey(req, key) == 1 && sk_X509_EXTENSION_push(exts, ext) > 0;
  if (!ok && ext != nullptr) X509_EXTENSION_free(ext);
  ok = ok && X509_REQ_add_extensions(req, exts) == 1 && X509_REQ_sign(req, key, EVP_sha256()) > 0;
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  std::string der;
  if (ok) {
    int len = i2d_X509_REQ(req, nullptr);
    der.resize(static_cast<std::size_t>(len));
    auto* out = reinterpret_cast<unsigned char*>(der.data());
    i2d_X509_REQ(req, &out);
  }
  X509_REQ_free(req);
  if (!ok) throw std::runtime_error(openssl_error("cannot build the CSR"));
  return der;
}

// ---- client --------------------------------------------------------------------------------------

struct acme_client::http_result {
  unsigned status = 0;
  std::string body;
  std::string location;
  std::string retry_after;
};

acme_client::acme_client(asio::io_context& ctx, config::acme_config cfg, callbacks cb)
    : ctx_(ctx), cfg_(std::move(cfg)), cb_(std::move(cb)), wake_(ctx), alive_(std::make_shared<bool>(true)) {
  client_ctx_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  client_ctx_->set_verify_mode(asio::ssl::verify_peer);
  if (cfg_.ca_bundle.empty()) client_ctx_->set_default_verify_paths();
  else client_ctx_->load_verify_file(cfg_.ca_bundle);
}

acme_client::~acme_client() { *alive_ = false; }

void acme_client::set_hosts(std::vector<std::string> hosts) {
  hosts_ = std::move(hosts);
  if (!running_) {
    running_ = true;
    asio::co_spawn(ctx_, run(), [alive = alive_](std::exception_ptr e) {
      if (!e || !*alive) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log::error("acme client stopped", {{"error", ex.what()}});
      }
    });
  } else {
    wake_.cancel();  // look at the new hosts now
  }
}

void acme_client::write_metrics(metrics::text_writer& w) const {
  w.family("wakegate_acme_orders_total", "counter", "ACME certificate orders, by result.");
  w.sample("wakegate_acme_orders_total", {{"result", "success"}}, static_cast<double>(orders_ok_));
  w.sample("wakegate_acme_orders_total", {{"result", "failure"}}, static_cast<double>(orders_failed_));
}

json::array acme_client::status() const {
  json::array out;
  auto now = now_s();
  for (const auto& host : hosts_) {
    json::object h{{"host", host}, {"not_after", 0}, {"last_error", ""}, {"consecutive_failures", 0},
                   {"next_attempt_in_seconds", 0}};
    if (auto it = state_.find(host); it != state_.end()) {
      h["not_after"] = it->second.not_after;
      h["last_error"] = it->second.last_error;
      h["consecutive_failures"] = it->second.failures;
      h["next_attempt_in_seconds"] = std::max<std::int64_t>(0, it->second.next_attempt - now);
    }
    out.push_back(std::move(h));
  }
  return out;
}

void acme_client::load_stored(const std::string& host, host_state& st) {
  st.storage_checked = true;
  fs::path dir = fs::path(cfg_.storage) / "certificates";
  std::string why;
  auto cert = config::read_text_file((dir / (host + ".crt")).string(), why);
  auto key = cert ? config::read_text_file((dir / (host + ".key")).string(), why) : std::nullopt;
  if (!cert || !key) return;
  auto check = config::inspect_certificate_pem(*cert, *key);
  if (!check.info || check.info->not_after <= now_s()) {
    log::warn("acme: stored certificate not usable", {{"host", host}, {"error", check.info ? "expired" : check.error}});
    return;
  }
  st.not_after = check.info->not_after;
  log::info("acme: certificate loaded from storage", {{"host", host}, {"not_after", st.not_after}});
  if (cb_.certificate) cb_.certificate(host, certificate_source{"acme:" + host, std::move(*cert), std::move(*key)});
}

asio::awaitable<void> acme_client::pause(std::chrono::milliseconds d) {
  asio::steady_timer t(ctx_);
  t.expires_after(d);
  co_await t.async_wait(tok);
}

// The storage directories and the account key, before the first order. Throws the reason: taken
// as that order's failure (in /status, the metrics and the log, and tried again with backoff).
// Found by black-box testing: a storage that could not be created stopped the client for good,
// with no error anywhere but one log line.
void acme_client::prepare_storage() {
  if (account_key_) return;
  make_private_dir(cfg_.storage);
  make_private_dir(fs::path(cfg_.storage) / "certificates");
  fs::path key_path = fs::path(cfg_.storage) / "account.key";
  std::string why;
  pkey_ptr key;
  if (auto pem = config::read_text_file(key_path.string(), why)) key = private_key_from_pem(*pem);
  if (!key) {
    key = generate_p256_key();
    write_private_file(key_path, private_key_pem(key.get()));
    log::info("acme: account key created", {{"file", key_path.string()}});
  }
  thumbprint_ = jwk_thumbprint(key.get());
  account_key_ = std::move(key);
}

asio::awaitable<void> acme_client::run() {
  for (;;) {
    auto alive = alive_;
    auto now = now_s();
    std::int64_t next = now + std::chrono::duration_cast<std::chrono::seconds>(renew_check_interval).count();
    auto renew_before = std::chrono::duration_cast<std::chrono::seconds>(cfg_.renew_before).count();
    auto check_every = std::chrono::duration_cast<std::chrono::seconds>(renew_check_interval).count();
    auto hosts = hosts_;
    for (const auto& host : hosts) {
      auto& st = state_[host];
      if (!st.storage_checked) load_stored(host, st);
      now = now_s();
      std::int64_t due = st.not_after == 0 ? now : st.not_after - renew_before;
      // renew_before longer than a certificate's lifetime: renew at most once per check interval.
      if (st.obtained_at != 0) due = std::max(due, st.obtained_at + check_every);
      due = std::max(due, st.next_attempt);
      if (due > now) {
        next = std::min(next, due);
        continue;
      }
      try {
        prepare_storage();
        log::info("acme: ordering certificate", {{"host", host}, {"renewal", st.not_after != 0}});
        co_await order(host);
        if (!*alive) co_return;
        ++orders_ok_;
        st.failures = 0;
        st.next_attempt = 0;
        st.last_error.clear();
        st.obtained_at = now_s();
      } catch (const std::exception& e) {
        if (!*alive) co_return;
        ++orders_failed_;
        st.failures = std::min(st.failures + 1, 30);
        auto base = std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(cfg_.retry_after).count());
        std::int64_t backoff = base;
        for (int i = 1; i < st.failures && backoff < max_backoff_s; ++i) backoff *= 2;
        backoff = std::min(backoff, max_backoff_s);
        st.next_attempt = now_s() + backoff;
        st.last_error = e.what();
        log::error("acme: order failed", {{"host", host}, {"error", e.what()}, {"retry_in_s", backoff}});
        // Challenge answers of the failed order are no longer needed.
        if (!challenges_.empty()) {
          challenges_.clear();
          publish_challenges();
        }
      }
      next = std::min(next, now_s());  // look at the list again right away
    }
    auto wait = std::max<std::int64_t>(0, next - now_s());
    if (wait == 0) continue;
    wake_.expires_after(std::chrono::seconds(wait));
    co_await wake_.async_wait(tok);
    if (!*alive) co_return;
  }
}

asio::awaitable<acme_client::http_result> acme_client::request(std::string_view method, const std::string& url,
                                                              std::string body, std::string_view content_type,
                                                              std::string_view accept) {
  auto u = parse_url(url);
  asio::ip::tcp::resolver resolver(ctx_);
  auto [rec, endpoints] = co_await resolver.async_resolve(u.host, u.port, tok);
  if (rec) throw std::runtime_error("cannot resolve " + u.host + ": " + rec.message());
  beast::ssl_stream<beast::tcp_stream> s(ctx_, *client_ctx_);
  if (!is_ip_literal(u.host)) SSL_set_tlsext_host_name(s.native_handle(), u.host.c_str());
  s.set_verify_callback(asio::ssl::host_name_verification(u.host));
  auto& tcp = beast::get_lowest_layer(s);
  tcp.expires_after(io_timeout);
  auto [cec, ep] = co_await tcp.async_connect(endpoints, tok);
  if (cec) throw std::runtime_error("cannot connect to " + url + ": " + cec.message());
  tcp.expires_after(io_timeout);
  auto [hec] = co_await s.async_handshake(asio::ssl::stream_base::client, tok);
  if (hec) throw std::runtime_error("TLS handshake with " + u.host + " failed: " + hec.message());

  http::request<http::string_body> req{http::string_to_verb(method), u.target, 11};
  req.set(http::field::host, u.host + ":" + u.port);
  req.set(http::field::user_agent, "wakegate-acme");
  req.set(http::field::accept, accept);
  if (!content_type.empty()) req.set(http::field::content_type, content_type);
  req.body() = std::move(body);
  req.prepare_payload();
  req.keep_alive(false);
  tcp.expires_after(io_timeout);
  auto [wec, wn] = co_await http::async_write(s, req, tok);
  if (wec) throw std::runtime_error("cannot send to " + url + ": " + wec.message());

  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_response_bytes);
  if (method == "HEAD") parser.skip(true);
  tcp.expires_after(io_timeout);
  auto [rec2, rn] = co_await http::async_read(s, buf, parser, tok);
  if (rec2) throw std::runtime_error("no response from " + url + ": " + rec2.message());
  auto& res = parser.get();
  http_result out;
  out.status = res.result_int();
  out.body = std::move(res.body());
  out.location = std::string(res[http::field::location]);
  out.retry_after = std::string(res[http::field::retry_after]);
  if (auto n = res["Replay-Nonce"]; !n.empty()) nonce_ = std::string(n);
  tcp.expires_after(std::chrono::seconds(2));
  co_await s.async_shutdown(tok);
  co_return out;
}

asio::awaitable<void> acme_client::ensure_directory() {
  if (!new_order_url_.empty()) co_return;
  auto r = co_await request("GET", cfg_.directory, {}, {}, "application/json");
  if (r.status != 200) throw std::runtime_error("ACME directory " + cfg_.directory + ": HTTP " + std::to_string(r.status));
  auto dir = parse_object(r.body);
  new_nonce_url_ = json_str(dir, "newNonce");
  new_account_url_ = json_str(dir, "newAccount");
  new_order_url_ = json_str(dir, "newOrder");
  if (new_nonce_url_.empty() || new_account_url_.empty() || new_order_url_.empty())
    throw std::runtime_error("ACME directory lacks newNonce, newAccount or newOrder");
}

asio::awaitable<acme_client::http_result> acme_client::post(const std::string& url, const std::string& payload,
                                                           std::string_view accept) {
  for (int attempt = 0;; ++attempt) {
    if (nonce_.empty()) {
      co_await request("HEAD", new_nonce_url_, {}, {}, "*/*");
      if (nonce_.empty()) throw std::runtime_error("ACME server sent no Replay-Nonce");
    }
    json::object prot{{"alg", "ES256"}, {"nonce", nonce_}, {"url", url}};
    if (account_url_.empty()) prot["jwk"] = json::parse(jwk_json(account_key_.get()));
    else prot["kid"] = account_url_;
    nonce_.clear();
    auto r = co_await request("POST", url, jws_sign(account_key_.get(), json::serialize(prot), payload),
                              "application/jose+json", accept);
    if (r.status == 400 && r.body.find("urn:ietf:params:acme:error:badNonce") != std::string::npos &&
        attempt < max_bad_nonce_retries)
      continue;  // a fresh nonce came with the refusal
    co_return r;
  }
}

asio::awaitable<void> acme_client::ensure_account() {
  co_await ensure_directory();
  if (!account_url_.empty()) co_return;
  json::object payload{{"termsOfServiceAgreed", true}};
  if (!cfg_.email.empty()) payload["contact"] = json::array{json::string("mailto:" + cfg_.email)};
  auto r = co_await post(new_account_url_, json::serialize(payload));
  if (r.status != 200 && r.status != 201)
    throw std::runtime_error("account registration refused: " + problem_text(r.status, r.body));
  if (r.location.empty()) throw std::runtime_error("account registration: no account URL");
  account_url_ = r.location;
  log::info("acme: account ready", {{"account", account_url_}});
}

void acme_client::publish_challenges() {
  if (cb_.challenges) cb_.challenges(std::make_shared<const challenge_map>(challenges_));
}

asio::awaitable<void> acme_client::order(const std::string& host) {
  co_await ensure_account();
  json::object id{{"type", "dns"}, {"value", host}};
  json::object payload{{"identifiers", json::array{id}}};
  auto r = co_await post(new_order_url_, json::serialize(payload));
  if (r.status != 201) throw std::runtime_error("order refused: " + problem_text(r.status, r.body));
  std::string order_url = r.location;
  auto ord = parse_object(r.body);
  std::string finalize = json_str(ord, "finalize");
  std::vector<std::string> authz;
  if (auto it = ord.find("authorizations"); it != ord.end() && it->value().is_array())
    for (const auto& a : it->value().as_array())
      if (a.is_string()) authz.emplace_back(a.as_string());
  if (order_url.empty() || finalize.empty() || authz.empty()) throw std::runtime_error("malformed order");

  auto wait_for = [&](const http_result& res) {
    int secs = std::atoi(res.retry_after.c_str());
    return std::chrono::milliseconds(secs > 0 ? std::min(secs, 10) * 1000 : 250);
  };

  for (const auto& az_url : authz) {
    auto a = co_await post(az_url, "");
    if (a.status != 200) throw std::runtime_error("authorization: " + problem_text(a.status, a.body));
    auto az = parse_object(a.body);
    if (json_str(az, "status") == "valid") continue;
    std::string token, chal_url;
    if (auto it = az.find("challenges"); it != az.end() && it->value().is_array())
      for (const auto& c : it->value().as_array())
        if (c.is_object() && json_str(c.as_object(), "type") == "http-01") {
          token = json_str(c.as_object(), "token");
          chal_url = json_str(c.as_object(), "url");
        }
    if (token.empty() || chal_url.empty()) throw std::runtime_error("the CA offers no http-01 challenge for " + host);
    challenges_[token] = token + "." + thumbprint_;
    publish_challenges();
    // The answer must be on every proxy thread before the CA asks for it.
    co_await pause(std::chrono::milliseconds(50));
    auto c = co_await post(chal_url, "{}");
    if (c.status != 200) throw std::runtime_error("challenge refused: " + problem_text(c.status, c.body));
    std::string status;
    for (int i = 0; i < max_polls; ++i) {
      a = co_await post(az_url, "");
      if (a.status != 200) throw std::runtime_error("authorization: " + problem_text(a.status, a.body));
      az = parse_object(a.body);
      status = json_str(az, "status");
      if (status != "pending" && status != "processing") break;
      co_await pause(wait_for(a));
    }
    challenges_.erase(token);
    publish_challenges();
    if (status != "valid") {
      std::string detail = "authorization " + status;
      if (auto it = az.find("challenges"); it != az.end() && it->value().is_array())
        for (const auto& ch : it->value().as_array())
          if (ch.is_object())
            if (auto e = ch.as_object().find("error"); e != ch.as_object().end() && e->value().is_object())
              detail += ": " + json_str(e->value().as_object(), "detail");
      throw std::runtime_error(detail);
    }
  }

  pkey_ptr key = generate_p256_key();
  json::object fin{{"csr", base64url(csr_der(key.get(), host))}};
  r = co_await post(finalize, json::serialize(fin));
  if (r.status != 200) throw std::runtime_error("finalize refused: " + problem_text(r.status, r.body));
  std::string cert_url;
  for (int i = 0; i < max_polls; ++i) {
    ord = parse_object(r.body);
    auto status = json_str(ord, "status");
    if (status == "valid") {
      cert_url = json_str(ord, "certificate");
      break;
    }
    if (status == "invalid") throw std::runtime_error("order became invalid");
    co_await pause(wait_for(r));
    r = co_await post(order_url, "");
    if (r.status != 200) throw std::runtime_error("order: " + problem_text(r.status, r.body));
  }
  if (cert_url.empty()) throw std::runtime_error("order not ready in time");
  auto cr = co_await post(cert_url, "", "application/pem-certificate-chain");
  if (cr.status != 200) throw std::runtime_error("certificate download: " + problem_text(cr.status, cr.body));
  std::string key_pem = private_key_pem(key.get());
  auto check = config::inspect_certificate_pem(cr.body, key_pem);
  if (!check.info) throw std::runtime_error("issued certificate unusable: " + check.error);

  fs::path dir = fs::path(cfg_.storage) / "certificates";
  make_private_dir(dir);
  write_private_file(dir / (host + ".key"), key_pem);
  write_private_file(dir / (host + ".crt"), cr.body);
  auto& st = state_[host];
  st.not_after = check.info->not_after;
  log::info("acme: certificate obtained", {{"host", host}, {"not_after", st.not_after}});
  if (cb_.certificate) cb_.certificate(host, certificate_source{"acme:" + host, std::move(cr.body), std::move(key_pem)});
}

}  // namespace wakegate::tls
