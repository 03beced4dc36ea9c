#include "tests/support/tls.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <stdexcept>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

namespace wakegate::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr const char* openssl_bin = "/usr/bin/openssl";

void openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{openssl_bin};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_command(argv, {}, std::chrono::seconds(30));
  if (r.exit_code != 0) throw std::runtime_error("openssl failed: " + r.err);
}

std::string names_of(const X509* cert) {
  std::string out;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
    if (gn->type != GEN_DNS) continue;
    if (!out.empty()) out += ",";
    out.append(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.dNSName)),
               static_cast<std::size_t>(ASN1_STRING_length(gn->d.dNSName)));
  }
  GENERAL_NAMES_free(sans);
  return out;
}

}  // namespace

cert_files make_test_ca(const std::string& dir) {
  cert_files ca{dir + "/ca.pem", dir + "/ca.key"};
  openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca.key, "-out",
           ca.cert, "-subj", "/CN=wakegate test CA", "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
           "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
  return ca;
}

cert_files make_test_cert(const std::string& dir, const std::string& file, const std::vector<std::string>& names,
                          const cert_files& ca, int days) {
  cert_files c{dir + "/" + file + ".pem", dir + "/" + file + ".key"};
  std::string san = "subjectAltName=";
  for (std::size_t i = 0; i < names.size(); ++i) san += (i ? ",DNS:" : "DNS:") + names[i];
  // Written next to the target and renamed, so a watcher never sees half a file.
  std::string tmp_cert = c.cert + ".new", tmp_key = c.key + ".new";
  openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", tmp_key, "-out",
           tmp_cert, "-subj", "/CN=" + names.front(), "-addext", san, "-addext", "basicConstraints=CA:FALSE", "-CA",
           ca.cert, "-CAkey", ca.key, "-days", std::to_string(days)});
  std::rename(tmp_key.c_str(), c.key.c_str());
  std::rename(tmp_cert.c_str(), c.cert.c_str());
  return c;
}

cert_files make_expired_cert(const std::string& dir, const std::string& file, const std::string& name) {
  return make_self_signed_cert(dir, file, {name}, -3 * 86400, -86400);
}

cert_files make_self_signed_cert(const std::string& dir, const std::string& file, const std::vector<std::string>& names,
                                 long not_before_s, long not_after_s) {
  const std::string& name = names.front();
  cert_files c{dir + "/" + file + ".pem", dir + "/" + file + ".key"};
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), not_before_s);
  X509_gmtime_adj(X509_getm_notAfter(x), not_after_s);
  X509_set_pubkey(x, key);
  X509_NAME* n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, n);
  std::string san;
  for (const auto& n : names) san += (san.empty() ? "DNS:" : ",DNS:") + n;
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(x, key, EVP_sha256());
  FILE* f = std::fopen(c.cert.c_str(), "w");
  PEM_write_X509(f, x);
  std::fclose(f);
  f = std::fopen(c.key.c_str(), "w");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(x);
  EVP_PKEY_free(key);
  return c;
}

command_result s_client(std::uint16_t port, const std::string& servername, const std::vector<std::string>& extra,
                        const std::string& input) {
  std::vector<std::string> argv{openssl_bin, "s_client", "-connect", "127.0.0.1:" + std::to_string(port)};
  if (servername.empty()) argv.push_back("-noservername");
  else argv.insert(argv.end(), {"-servername", servername});
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_command(argv, input, std::chrono::seconds(20));
}

std::string presented_names(std::uint16_t port, const std::string& servername) {
  auto r = s_client(port, servername);
  auto begin = r.out.find("-----BEGIN CERTIFICATE-----");
  auto end = r.out.find("-----END CERTIFICATE-----");
  if (begin == std::string::npos || end == std::string::npos) return {};
  std::string pem = r.out.substr(begin, end + 25 - begin) + "\n";
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  if (x == nullptr) return {};
  std::string names = names_of(x);
  X509_free(x);
  return names;
}

command_result curl_https(std::uint16_t port, const std::string& host, const std::string& target, const std::string& ca,
                          const std::vector<std::string>& extra) {
  std::string p = std::to_string(port);
  std::vector<std::string> argv{"/usr/bin/curl", "-sS",  "-i",       "--max-time", "30", "--cacert", ca, "--resolve",
                                host + ":" + p + ":127.0.0.1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back("https://" + host + ":" + p + target);
  return run_command(argv, "", std::chrono::seconds(40));
}

struct tls_connection::impl {
  asio::io_context ioc;
  asio::ssl::context ctx{asio::ssl::context::tls_client};
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> s;
  beast::flat_buffer buf;
  std::string host;
  std::string error;
};

tls_connection::tls_connection(std::uint16_t port, const std::string& host, const std::string& ca_file)
    : p_(std::make_unique<impl>()) {
  p_->host = host;
  boost::system::error_code ec;
  p_->ctx.load_verify_file(ca_file, ec);
  p_->ctx.set_verify_mode(asio::ssl::verify_peer);
  p_->s = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(p_->ioc, p_->ctx);
  SSL_set_tlsext_host_name(p_->s->native_handle(), host.c_str());
  p_->s->set_verify_callback(asio::ssl::host_name_verification(host));
  auto& tcp = beast::get_lowest_layer(*p_->s);
  tcp.expires_after(std::chrono::seconds(10));
  tcp.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  if (!ec) p_->s->handshake(asio::ssl::stream_base::client, ec);
  if (ec) p_->error = ec.message();
}

tls_connection::~tls_connection() = default;
bool tls_connection::connected() const { return p_->error.empty(); }
std::string tls_connection::error() const { return p_->error; }

int tls_connection::get(const std::string& target, std::string& body, std::chrono::milliseconds timeout) {
  if (!connected()) return 0;
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, p_->host);
  boost::system::error_code ec;
  int status = 0;
  http::response<http::string_body> res;
  auto& tcp = beast::get_lowest_layer(*p_->s);
  tcp.expires_after(timeout);
  http::async_write(*p_->s, req, [&](boost::system::error_code e, std::size_t) {
    if (e) {
      ec = e;
      return;
    }
    http::async_read(*p_->s, p_->buf, res, [&](boost::system::error_code e2, std::size_t) {
      ec = e2;
      if (!e2) status = res.result_int();
    });
  });
  p_->ioc.restart();
  p_->ioc.run();
  if (ec) {
    p_->error = ec.message();
    return 0;
  }
  body = res.body();
  return status;
}

bool tls_connection::send_get(const std::string& target) {
  if (!connected()) return false;
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, p_->host);
  boost::system::error_code ec;
  beast::get_lowest_layer(*p_->s).expires_after(std::chrono::seconds(10));
  http::write(*p_->s, req, ec);
  if (ec) p_->error = ec.message();
  return !ec;
}

void tls_connection::close() {
  boost::system::error_code ec;
  beast::get_lowest_layer(*p_->s).socket().close(ec);
}

std::string tls_connection::peer_names() const {
  X509* x = SSL_get1_peer_certificate(p_->s->native_handle());
  if (x == nullptr) return {};
  std::string n = names_of(x);
  X509_free(x);
  return n;
}

}  // namespace wakegate::test
