// TLS helpers for tests: certificates made at test time with the openssl command (an expired one
// with the OpenSSL API, which the command cannot backdate), `openssl s_client` and `curl` runs, and
// a keep-alive HTTPS connection that sends requests one after another.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace wakegate::test {

struct cert_files {
  std::string cert;
  std::string key;
};

// A CA (ECDSA P-256) in `dir`: ca.pem, ca.key.
cert_files make_test_ca(const std::string& dir);
// A leaf certificate (ECDSA P-256) for `names` (DNS subjectAltNames), signed by `ca`, written to
// dir/<file>.pem and dir/<file>.key. Throws std::runtime_error when openssl fails.
cert_files make_test_cert(const std::string& dir, const std::string& file, const std::vector<std::string>& names,
                          const cert_files& ca, int days = 30);
// A self-signed certificate for `name` that expired yesterday.
cert_files make_expired_cert(const std::string& dir, const std::string& file, const std::string& name);
// A self-signed certificate (ECDSA P-256) for `names`, valid from now + not_before_s to now +
// not_after_s (seconds, either may be negative), written to dir/<file>.pem and dir/<file>.key.
cert_files make_self_signed_cert(const std::string& dir, const std::string& file, const std::vector<std::string>& names,
                                 long not_before_s, long not_after_s);

// `openssl s_client` against 127.0.0.1:port. `servername` empty: no SNI. Extra args as given;
// `input` goes to its stdin.
command_result s_client(std::uint16_t port, const std::string& servername, const std::vector<std::string>& extra = {},
                        const std::string& input = {});
// The DNS subjectAltNames of the certificate the server presented ("" when the handshake failed).
std::string presented_names(std::uint16_t port, const std::string& servername);

// `curl` over HTTPS to https://host:port/target with --resolve to 127.0.0.1 and --cacert `ca`.
// Output: the response header block and body (-i); exit code of curl.
command_result curl_https(std::uint16_t port, const std::string& host, const std::string& target, const std::string& ca,
                          const std::vector<std::string>& extra = {});

// A keep-alive HTTPS connection (verifying against `ca`, SNI `host`).
class tls_connection {
 public:
  tls_connection(std::uint16_t port, const std::string& host, const std::string& ca_file);
  ~tls_connection();
  tls_connection(const tls_connection&) = delete;
  tls_connection& operator=(const tls_connection&) = delete;
  bool connected() const;
  std::string error() const;
  // GET target; status (0 on error), body in `body`.
  int get(const std::string& target, std::string& body, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Sends GET target without reading the answer; false on error.
  bool send_get(const std::string& target);
  // Closes the TCP connection at once (no TLS close_notify).
  void close();
  // Subject alternative names of the peer certificate of this connection.
  std::string peer_names() const;

 private:
  struct impl;
  std::unique_ptr<impl> p_;
};

}  // namespace wakegate::test
