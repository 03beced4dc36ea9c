// Pebble (Let's Encrypt's ACME test server) and pebble-challtestsrv as its DNS, started by a test
// on free loopback ports and stopped (with their process groups) on destruction. DNS answers
// 127.0.0.1 for every name (no AAAA), and Pebble validates HTTP-01 on `http_port`.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "tests/support/process.hpp"
#include "tests/support/tls.hpp"

namespace wakegate::test {

class pebble_server {
 public:
  // Throws std::runtime_error when pebble does not answer its directory in time.
  explicit pebble_server(std::uint16_t http_port);
  ~pebble_server();
  pebble_server(const pebble_server&) = delete;
  pebble_server& operator=(const pebble_server&) = delete;

  std::string directory_url() const;    // https://localhost:<port>/dir
  const std::string& ca_file() const { return ca_.cert; }  // trusts Pebble's own listeners
  // Pebble's issuing root (from its management API), written to a file; "" on failure.
  std::string root_file();
  std::string log() const;  // pebble's output, for failure messages

 private:
  temp_dir dir_;
  cert_files ca_;
  std::uint16_t acme_port_ = 0, mgmt_port_ = 0, dns_port_ = 0, chall_mgmt_port_ = 0;
  pid_t pebble_ = -1, challtestsrv_ = -1;
};

}  // namespace wakegate::test
