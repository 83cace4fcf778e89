#include "json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace hwnas {

namespace json {

// ---------------------------------------------------------------------------------------------
// Object and Value

namespace {

bool key_less(const Object::Member& m, std::string_view key) { return m.first < key; }

}  // namespace

const Value* Object::find(std::string_view key) const {
  auto it = std::lower_bound(members_.begin(), members_.end(), key, key_less);
  return (it != members_.end() && it->first == key) ? &it->second : nullptr;
}

void Object::set(std::string key, Value value) {
  auto it = std::lower_bound(members_.begin(), members_.end(), key, key_less);
  if (it != members_.end() && it->first == key) {
    it->second = std::move(value);
  } else {
    members_.emplace(it, std::move(key), std::move(value));
  }
}

const std::string* Object::assign_unsorted(std::vector<Member> members) {
  std::stable_sort(members.begin(), members.end(),
                   [](const Member& a, const Member& b) { return a.first < b.first; });
  members_ = std::move(members);
  for (std::size_t i = 1; i < members_.size(); ++i) {
    if (members_[i].first == members_[i - 1].first) return &members_[i].first;
  }
  return nullptr;
}

const char* type_name(Value::Type type) {
  switch (type) {
    case Value::Type::Null: return "null";
    case Value::Type::Bool: return "boolean";
    case Value::Type::Number: return "number";
    case Value::Type::String: return "string";
    case Value::Type::Array: return "array";
    case Value::Type::Object: return "object";
  }
  return "unknown";
}

namespace {

[[noreturn]] void type_mismatch(const char* wanted, Value::Type got) {
  throw InvalidArgument(std::string("JSON value has type ") + type_name(got) + ", expected " + wanted);
}

}  // namespace

bool Value::as_bool() const {
  if (!is_bool()) type_mismatch("boolean", type());
  return std::get<bool>(data_);
}

double Value::as_number() const {
  if (!is_number()) type_mismatch("number", type());
  return std::get<double>(data_);
}

const std::string& Value::as_string() const {
  if (!is_string()) type_mismatch("string", type());
  return std::get<std::string>(data_);
}

const Array& Value::as_array() const {
  if (!is_array()) type_mismatch("array", type());
  return std::get<Array>(data_);
}

const Object& Value::as_object() const {
  if (!is_object()) type_mismatch("object", type());
  return std::get<Object>(data_);
}

const Value* Value::find(std::string_view key) const {
  return is_object() ? std::get<Object>(data_).find(key) : nullptr;
}

// ---------------------------------------------------------------------------------------------
// Parser

namespace {

constexpr int kMaxDepth = 128;

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// "'x'" for printable ASCII, "byte 0xNN" otherwise.
std::string describe_byte(unsigned char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
  char buf[16];
  std::snprintf(buf, sizeof buf, "byte 0x%02X", c);
  return buf;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Length of the well-formed UTF-8 sequence starting with lead byte `c` and the allowed range of
// its second byte (Unicode table 3-7: no overlongs, no surrogates, nothing above U+10FFFF).
struct Utf8Lead {
  int length;  // 0: invalid lead byte
  unsigned char lo, hi;
};

Utf8Lead utf8_lead(unsigned char c) {
  if (c >= 0xC2 && c <= 0xDF) return {2, 0x80, 0xBF};
  if (c == 0xE0) return {3, 0xA0, 0xBF};
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return {3, 0x80, 0xBF};
  if (c == 0xED) return {3, 0x80, 0x9F};
  if (c == 0xF0) return {4, 0x90, 0xBF};
  if (c >= 0xF1 && c <= 0xF3) return {4, 0x80, 0xBF};
  if (c == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Value parse_document() {
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;  // RFC 8259 allows ignoring a BOM
    skip_ws();
    if (at_end()) fail("no JSON value (the text is empty or only whitespace)");
    Value v = parse_value();
    skip_ws();
    if (!at_end()) fail("unexpected data after the JSON value: " + describe_byte(peek()));
    return v;
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  int depth_ = 0;

  bool at_end() const { return pos_ >= text_.size(); }
  unsigned char peek() const { return static_cast<unsigned char>(text_[pos_]); }

  void skip_ws() {
    while (!at_end() && is_ws(text_[pos_])) ++pos_;
  }

  [[noreturn]] void fail_at(std::size_t offset, const std::string& reason) const {
    offset = std::min(offset, text_.size());
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < offset; ++i) {
      const auto c = static_cast<unsigned char>(text_[i]);
      if (c == '\n') {
        ++line;
        column = 1;
      } else if ((c & 0xC0) != 0x80) {  // count characters, not UTF-8 continuation bytes
        ++column;
      }
    }
    throw FormatError("line " + std::to_string(line) + ", column " + std::to_string(column) +
                      " (byte " + std::to_string(offset) + "): " + reason);
  }

  [[noreturn]] void fail(const std::string& reason) const { fail_at(pos_, reason); }

  [[noreturn]] void fail_truncated() const { fail("unexpected end of file (truncated?)"); }

  // Fails saying what was expected at the current position (or that the text ended early).
  [[noreturn]] void fail_expected(const std::string& what) const {
    if (at_end()) fail_truncated();
    fail("expected " + what + ", got " + describe_byte(peek()));
  }

  Value parse_value() {
    switch (peek()) {
      case '{': return parse_object();
      case '[': return parse_array();
      case '"': return Value(parse_string());
      case 't': expect_literal("true"); return Value(true);
      case 'f': expect_literal("false"); return Value(false);
      case 'n': expect_literal("null"); return Value(nullptr);
      case 'N':
      case 'I': fail("NaN and Infinity are not valid JSON (write null)");
      default:
        if (peek() == '-' || is_digit(text_[pos_])) return Value(parse_number());
        fail_expected("a JSON value");
    }
  }

  void expect_literal(std::string_view word) {
    const std::string_view rest = text_.substr(pos_, word.size());
    if (rest == word) {
      pos_ += word.size();
      return;
    }
    if (rest.size() < word.size() && word.substr(0, rest.size()) == rest) {
      pos_ = text_.size();
      fail_truncated();
    }
    fail("invalid literal (expected '" + std::string(word) + "')");
  }

  void enter(std::size_t start) {
    if (++depth_ > kMaxDepth) fail_at(start, "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
  }

  Value parse_object() {
    const std::size_t start = pos_;
    enter(start);
    ++pos_;  // '{'
    std::vector<Object::Member> members;
    skip_ws();
    if (!at_end() && peek() == '}') {
      ++pos_;
    } else {
      while (true) {
        skip_ws();
        if (at_end() || peek() != '"') {
          fail_expected(members.empty() ? "a string key or '}'" : "a string key (trailing commas are not allowed)");
        }
        std::string key = parse_string();
        skip_ws();
        if (at_end() || peek() != ':') fail_expected("':' after object key");
        ++pos_;
        skip_ws();
        if (at_end()) fail_truncated();
        members.emplace_back(std::move(key), parse_value());
        skip_ws();
        if (!at_end() && peek() == ',') {
          ++pos_;
          continue;
        }
        if (!at_end() && peek() == '}') {
          ++pos_;
          break;
        }
        fail_expected("',' or '}' in object");
      }
    }
    --depth_;
    Object object;
    if (const std::string* dup = object.assign_unsorted(std::move(members))) {
      fail_at(start, "duplicate key " + quote(*dup) + " in the object that starts here");
    }
    return Value(std::move(object));
  }

  Value parse_array() {
    enter(pos_);
    ++pos_;  // '['
    Array items;
    skip_ws();
    if (!at_end() && peek() == ']') {
      ++pos_;
    } else {
      while (true) {
        skip_ws();
        if (at_end()) fail_truncated();
        if (peek() == ']') fail("expected a JSON value (trailing commas are not allowed)");
        items.push_back(parse_value());
        skip_ws();
        if (!at_end() && peek() == ',') {
          ++pos_;
          continue;
        }
        if (!at_end() && peek() == ']') {
          ++pos_;
          break;
        }
        fail_expected("',' or ']' in array");
      }
    }
    --depth_;
    return Value(std::move(items));
  }

  // Decimal magnitude (power of ten of the leading digit) of a number token, saturated.
  static long long magnitude(std::string_view token) {
    std::size_t i = token[0] == '-' ? 1 : 0;
    long long int_digits = 0, lead = 0;  // lead: power of ten of the first nonzero digit
    bool found = false;
    for (; i < token.size() && is_digit(token[i]); ++i, ++int_digits) {
      if (!found && token[i] != '0') found = true, lead = int_digits;
    }
    long long mag = found ? int_digits - lead - 1 : 0;
    if (i < token.size() && token[i] == '.') {
      long long frac = 0;
      for (++i; i < token.size() && is_digit(token[i]); ++i) {
        ++frac;
        if (!found && token[i] != '0') found = true, mag = -frac;
      }
    }
    long long exp = 0;
    if (i < token.size()) {  // 'e' or 'E'
      ++i;
      const bool neg = token[i] == '-';
      if (token[i] == '-' || token[i] == '+') ++i;
      for (; i < token.size(); ++i) exp = std::min(exp * 10 + (token[i] - '0'), 1000000LL);
      if (neg) exp = -exp;
    }
    return mag + exp;
  }

  void digits() {
    while (!at_end() && is_digit(text_[pos_])) ++pos_;
  }

  double parse_number() {
    const std::size_t start = pos_;
    if (peek() == '-') {
      ++pos_;
      if (!at_end() && peek() == 'I') fail("NaN and Infinity are not valid JSON (write null)");
    }
    if (at_end() || !is_digit(text_[pos_])) fail_expected("a digit");
    if (text_[pos_] == '0') {
      ++pos_;
      if (!at_end() && is_digit(text_[pos_])) fail("leading zeros are not allowed in numbers");
    } else {
      digits();
    }
    if (!at_end() && peek() == '.') {
      ++pos_;
      if (at_end() || !is_digit(text_[pos_])) fail_expected("a digit after '.'");
      digits();
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (at_end() || !is_digit(text_[pos_])) fail_expected("a digit in the exponent");
      digits();
    }
    const std::string_view token = text_.substr(start, pos_ - start);
    double value = 0;
    const auto res = std::from_chars(token.data(), token.data() + token.size(), value);
    if (res.ec == std::errc::result_out_of_range) {
      if (magnitude(token) >= 0) fail_at(start, "number " + std::string(token) + " is out of range");
      value = token[0] == '-' ? -0.0 : 0.0;  // underflow: the nearest double is zero
    } else if (res.ec != std::errc() || res.ptr != token.data() + token.size()) {
      fail_at(start, "invalid number " + std::string(token));
    }
    return value;
  }

  unsigned hex4() {
    if (text_.size() - pos_ < 4) {
      pos_ = text_.size();
      fail_truncated();
    }
    unsigned v = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      const char c = text_[pos_];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else fail("invalid hex digit " + describe_byte(static_cast<unsigned char>(c)) + " in \\u escape");
    }
    return v;
  }

  // After "\u": one code point, combining a UTF-16 surrogate pair.
  uint32_t unicode_escape(std::size_t escape_start) {
    const char* const unpaired = "high surrogate in \\u escape not followed by a low surrogate";
    const unsigned hi = hex4();
    if (hi >= 0xDC00 && hi <= 0xDFFF) fail_at(escape_start, "lone low surrogate in \\u escape");
    if (hi < 0xD800 || hi > 0xDBFF) return hi;
    const std::string_view next = text_.substr(pos_, 2);
    if (next != "\\u") {
      if (next.size() < 2 && std::string_view("\\u").substr(0, next.size()) == next) {
        pos_ = text_.size();
        fail_truncated();
      }
      fail_at(escape_start, unpaired);
    }
    pos_ += 2;
    const unsigned lo = hex4();
    if (lo < 0xDC00 || lo > 0xDFFF) fail_at(escape_start, unpaired);
    return 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
  }

  void escape(std::string& out) {
    const std::size_t escape_start = pos_;
    ++pos_;  // '\'
    if (at_end()) fail_truncated();
    const char c = text_[pos_++];
    switch (c) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': append_utf8(out, unicode_escape(escape_start)); break;
      default:
        fail_at(escape_start, "invalid escape: backslash followed by " + describe_byte(static_cast<unsigned char>(c)));
    }
  }

  // Copies one multi-byte UTF-8 character after validating it.
  void utf8_char(std::string& out) {
    const Utf8Lead lead = utf8_lead(peek());
    if (lead.length == 0) fail("invalid UTF-8 in string (" + describe_byte(peek()) + ")");
    if (text_.size() - pos_ < static_cast<std::size_t>(lead.length)) {
      pos_ = text_.size();
      fail_truncated();
    }
    for (int i = 1; i < lead.length; ++i) {
      const auto c = static_cast<unsigned char>(text_[pos_ + i]);
      const unsigned char lo = i == 1 ? lead.lo : 0x80, hi = i == 1 ? lead.hi : 0xBF;
      if (c < lo || c > hi) fail("invalid UTF-8 in string");
    }
    out.append(text_.data() + pos_, lead.length);
    pos_ += lead.length;
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      const std::size_t run = pos_;
      while (!at_end() && peek() >= 0x20 && peek() < 0x80 && peek() != '"' && peek() != '\\') ++pos_;
      out.append(text_.data() + run, pos_ - run);
      if (at_end()) fail_truncated();
      const unsigned char c = peek();
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c == '\\') {
        escape(out);
      } else if (c < 0x20) {
        fail("control character " + describe_byte(c) + " in string (must be escaped)");
      } else {
        utf8_char(out);
      }
    }
  }
};

}  // namespace

Value parse(std::string_view text) { return Parser(text).parse_document(); }

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

constexpr std::size_t kMaxInlineMembers = 8;

void write_number(std::string& out, double x) {
  if (!std::isfinite(x)) {
    out += "null";
    return;
  }
  char buf[32];
  std::to_chars_result res;
  if (x == std::trunc(x) && std::fabs(x) < 9007199254740992.0 && !(x == 0 && std::signbit(x))) {
    res = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(x));
  } else {
    res = std::to_chars(buf, buf + sizeof buf, x);  // shortest round-trip form
  }
  out.append(buf, res.ptr);
}

void write_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04X", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

bool is_scalar(const Value& v) { return !v.is_array() && !v.is_object(); }

// Short containers of scalars go on one line: an entry's stats stay greppable.
template <class Container, class Get>
bool fits_inline(const Container& c, Get value_of) {
  if (c.size() > kMaxInlineMembers) return false;
  return std::all_of(c.begin(), c.end(), [&](const auto& m) { return is_scalar(value_of(m)); });
}

void write_value(std::string& out, const Value& v, int indent, int level);

void newline(std::string& out, int indent, int level) {
  out += '\n';
  out.append(static_cast<std::size_t>(indent) * level, ' ');
}

void write_array(std::string& out, const Array& a, int indent, int level) {
  const auto self = [](const Value& x) -> const Value& { return x; };
  const bool one_line = fits_inline(a, self);
  out += '[';
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (i) out += one_line ? ", " : ",";
    if (!one_line) newline(out, indent, level + 1);
    write_value(out, a[i], indent, level + 1);
  }
  if (!one_line && !a.empty()) newline(out, indent, level);
  out += ']';
}

void write_object(std::string& out, const Object& o, int indent, int level) {
  const auto value_of = [](const Object::Member& m) -> const Value& { return m.second; };
  const bool one_line = fits_inline(o, value_of);
  out += '{';
  bool first = true;
  for (const auto& [key, value] : o) {
    if (!first) out += one_line ? ", " : ",";
    first = false;
    if (!one_line) newline(out, indent, level + 1);
    write_string(out, key);
    out += ": ";
    write_value(out, value, indent, level + 1);
  }
  if (!one_line && !o.empty()) newline(out, indent, level);
  out += '}';
}

void write_value(std::string& out, const Value& v, int indent, int level) {
  switch (v.type()) {
    case Value::Type::Null: out += "null"; break;
    case Value::Type::Bool: out += v.as_bool() ? "true" : "false"; break;
    case Value::Type::Number: write_number(out, v.as_number()); break;
    case Value::Type::String: write_string(out, v.as_string()); break;
    case Value::Type::Array: write_array(out, v.as_array(), indent, level); break;
    case Value::Type::Object: write_object(out, v.as_object(), indent, level); break;
  }
}

}  // namespace

std::string write(const Value& value, int indent) {
  std::string out;
  write_value(out, value, std::max(indent, 0), 0);
  return out;
}

std::string quote(std::string_view s) {
  std::string out;
  write_string(out, s);
  return out;
}

}  // namespace json
}  // namespace hwnas
