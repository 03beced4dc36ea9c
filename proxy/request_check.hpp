// The one place on the request path where a request's framing and headers are checked before
// anything is forwarded: check_head (framing.hpp) judges the raw header bytes, then this checks
// what Beast parsed from them against that verdict, so the instance gets the body framing that
// wakegate decided and nothing an upstream could read differently. Refused: 400 (and close).
// Accepted absolute-form targets are rewritten to origin-form here (to_origin_form).
#pragma once

#include <string_view>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "proxy/framing.hpp"

namespace wakegate::proxy {

struct check_result {
  unsigned status = 0;         // 0 = forward; else the status to answer (then close)
  std::string_view reason;     // short text for the body and the log
};

// Also makes an absolute-form target origin-form (to_origin_form), the one change it makes.
check_result check_request(boost::beast::http::request_parser<boost::beast::http::buffer_body>& p,
                           const head_verdict& v);

// RFC 9112 3.2.2: a server must accept a target in absolute-form with scheme http or https
// ("http://a.test/x", the scheme in any case) and take the host from it, ignoring any Host field.
// Rewrites such a request to origin-form ("/x"; "/" for an empty path, "*" for OPTIONS) with its authority as the
// one Host field, so that routing, the instance and the access log all see one name. 400 for
// userinfo ("user@host"), an empty or invalid authority, or a fragment. Any other target is left
// alone. Only absolute-form requests pay for it (the target and Host are copied).
check_result to_origin_form(boost::beast::http::request_header<>& req);

}  // namespace wakegate::proxy
