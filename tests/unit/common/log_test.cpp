#include "common/log.hpp"

#include <string>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

using wakegate::log::append_json_string;

namespace {

std::string json(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

// What a strict JSON parser reads back; "" and a failed CHECK when it refuses the text.
std::string parsed(const std::string& text) {
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  CHECK_FALSE(ec);
  return ec || !v.is_string() ? std::string() : std::string(v.as_string());
}

}  // namespace

TEST_CASE("json string: quotes, backslashes and controls are escaped", "[log]") {
  CHECK(json("plain") == "\"plain\"");
  CHECK(json("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(json("\n\r\t\x01\x7f") == "\"\\n\\r\\t\\u0001\\u007f\"");
  CHECK(parsed(json(std::string("x\0y", 3))) == std::string("x\0y", 3));
}

TEST_CASE("json string: UTF-8 is kept, bytes that are not UTF-8 become U+FFFD", "[log]") {
  // Well-formed: two, three and four byte sequences, at the edges of their ranges.
  for (std::string ok : {"é", "€", "\xed\x9f\xbf" /* U+D7FF */, "\xee\x80\x80" /* U+E000 */, "😀",
                         "\xf4\x8f\xbf\xbf" /* U+10FFFF */}) {
    INFO(ok);
    CHECK(json(ok) == "\"" + ok + "\"");
    CHECK(parsed(json(ok)) == ok);
  }
  const std::string replacement = "\xef\xbf\xbd";
  // Not UTF-8: lone bytes, a cut sequence, overlong forms, surrogates, past U+10FFFF.
  CHECK(json("/a\xff\xfe") == "\"/a\\ufffd\\ufffd\"");
  CHECK(parsed(json("/a\xff\xfe")) == "/a" + replacement + replacement);
  for (std::string bad : {"\x80", "\xc3", "\xe2\x82", "\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf",
                          "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80"}) {
    INFO(bad.size() << " bytes");
    const std::string out = json(bad);
    CHECK(out.find('\x80') == std::string::npos);
    std::string expected;
    for (std::size_t k = 0; k < bad.size(); ++k) expected += "\\ufffd";
    // Each byte that starts no well-formed sequence is replaced on its own; the continuation
    // bytes after a refused lead are refused in turn.
    CHECK(out == "\"" + expected + "\"");
    parsed(out);
  }
  // A valid sequence right after an invalid byte is kept.
  CHECK(json("\xff\xc3\xa9") == "\"\\ufffdé\"");
}
