#include "errors.h"

#include <algorithm>
#include <charconv>

#include "json.h"

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

std::string format_key_list(const std::vector<std::string>& keys) {
  std::string out;
  const std::size_t shown = std::min(keys.size(), kMaxKeysShown);
  for (std::size_t i = 0; i < shown; ++i) {
    if (i) out += ", ";
    out += json::quote(keys[i]);
  }
  if (keys.size() > shown) out += ", ... and " + std::to_string(keys.size() - shown) + " more";
  return out;
}

MissingKeysError::MissingKeysError(const std::string& context, std::vector<std::string> keys)
    : std::runtime_error(missing_message(context, keys)), keys_(std::move(keys)) {}

}  // namespace hwnas
