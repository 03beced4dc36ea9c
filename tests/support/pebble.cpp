#include "tests/support/pebble.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "tests/support/wait.hpp"

namespace wakegate::test {

pebble_server::pebble_server(std::uint16_t http_port) {
  ca_ = make_test_ca(dir_.path());
  auto tls = make_test_cert(dir_.path(), "pebble", {"localhost"}, ca_);
  acme_port_ = free_port();
  mgmt_port_ = free_port();
  dns_port_ = free_port();
  chall_mgmt_port_ = free_port();
  auto tls_port = free_port();
  std::string cfg = R"({"pebble":{"listenAddress":"127.0.0.1:)" + std::to_string(acme_port_) +
                    R"(","managementListenAddress":"127.0.0.1:)" + std::to_string(mgmt_port_) +
                    R"(","certificate":")" + tls.cert + R"(","privateKey":")" + tls.key +
                    R"(","httpPort":)" + std::to_string(http_port) + R"(,"tlsPort":)" + std::to_string(tls_port) +
                    R"(,"ocspResponderURL":"","externalAccountBindingRequired":false}})";
  auto cfg_file = dir_.write("pebble.json", cfg);
  challtestsrv_ = spawn_logged({"/usr/bin/pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01",
                         "127.0.0.1:" + std::to_string(dns_port_), "-http01", "", "-https01", "", "-tlsalpn01", "",
                         "-management", "127.0.0.1:" + std::to_string(chall_mgmt_port_)},
                        dir_.path() + "/challtestsrv.log");
  pebble_ = spawn_logged({"/usr/bin/pebble", "-config", cfg_file, "-dnsserver", "127.0.0.1:" + std::to_string(dns_port_)},
                  dir_.path() + "/pebble.log", {"PEBBLE_VA_NOSLEEP=1"});
  bool up = wait_until(
      [&] {
        auto r = run_command({"/usr/bin/curl", "-sf", "--max-time", "2", "--cacert", ca_.cert, directory_url()}, "", 5s);
        return r.exit_code == 0;
      },
      20s, 100ms);
  if (!up) {
    std::string why = log() + read_file(dir_.path() + "/challtestsrv.log");
    kill_group(pebble_);
    kill_group(challtestsrv_);
    throw std::runtime_error("pebble did not start: " + why);
  }
}

pebble_server::~pebble_server() {
  kill_group(pebble_);
  kill_group(challtestsrv_);
}

std::string pebble_server::directory_url() const { return "https://localhost:" + std::to_string(acme_port_) + "/dir"; }

std::string pebble_server::root_file() {
  auto r = run_command({"/usr/bin/curl", "-sf", "--max-time", "5", "--cacert", ca_.cert,
                        "https://localhost:" + std::to_string(mgmt_port_) + "/roots/0"},
                       "", 10s);
  if (r.exit_code != 0) return {};
  return dir_.write("pebble-root.pem", r.out);
}

std::string pebble_server::log() const { return read_file(dir_.path() + "/pebble.log"); }

}  // namespace wakegate::test
