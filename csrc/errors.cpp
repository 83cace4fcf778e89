#include "errors.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace hwnas {

namespace {

constexpr std::size_t kMaxKeysShown = 20;

std::string missing_message(const std::string& context, const std::vector<std::string>& keys) {
  const char* noun = keys.size() == 1 ? " missing key: " : " missing keys: ";
  return context + ": " + std::to_string(keys.size()) + noun + format_key_list(keys);
}

}  // namespace

std::string format_double(double x) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, res.ptr);
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", byte);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string format_key_list(const std::vector<std::string>& keys) {
  std::string out;
  const std::size_t shown = std::min(keys.size(), kMaxKeysShown);
  for (std::size_t i = 0; i < shown; ++i) {
    if (i) out += ", ";
    out += quote(keys[i]);
  }
  if (keys.size() > shown) out += ", ... and " + std::to_string(keys.size() - shown) + " more";
  return out;
}

MissingKeysError::MissingKeysError(const std::string& context, std::vector<std::string> keys)
    : std::runtime_error(missing_message(context, keys)), keys_(std::move(keys)) {}

}  // namespace hwnas
