// ACME HTTP-01 answers: token -> key authorization, served by the http listener at
// /.well-known/acme-challenge/<token>.
#pragma once

#include <functional>
#include <map>
#include <string>

namespace wakegate::tls {

using challenge_map = std::map<std::string, std::string, std::less<>>;

}  // namespace wakegate::tls
