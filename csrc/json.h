// A small JSON DOM with a strict RFC 8259 parser and a deterministic pretty writer.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "errors.h"

namespace hwnas {

namespace json {

class Value;

// Object members kept sorted by key (unique keys), so writing is deterministic.
class Object {
 public:
  using Member = std::pair<std::string, Value>;

  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);  // insert or replace
  std::size_t size() const { return members_.size(); }
  bool empty() const { return members_.empty(); }
  std::vector<Member>::const_iterator begin() const { return members_.begin(); }
  std::vector<Member>::const_iterator end() const { return members_.end(); }

  // Builds from members in any order; returns the first duplicated key, or nullptr if none.
  const std::string* assign_unsorted(std::vector<Member> members);

 private:
  std::vector<Member> members_;
};

using Array = std::vector<Value>;

class Value {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : data_(b) {}
  Value(double x) : data_(x) {}
  Value(int64_t x) : data_(static_cast<double>(x)) {}
  Value(const char* s) : data_(std::string(s)) {}
  Value(std::string s) : data_(std::move(s)) {}
  Value(json::Array a) : data_(std::move(a)) {}
  Value(json::Object o) : data_(std::move(o)) {}

  Type type() const { return static_cast<Type>(data_.index()); }
  bool is_null() const { return type() == Type::Null; }
  bool is_bool() const { return type() == Type::Bool; }
  bool is_number() const { return type() == Type::Number; }
  bool is_string() const { return type() == Type::String; }
  bool is_array() const { return type() == Type::Array; }
  bool is_object() const { return type() == Type::Object; }

  // Accessors throw InvalidArgument on a type mismatch.
  bool as_bool() const;
  double as_number() const;
  const std::string& as_string() const;
  const json::Array& as_array() const;
  const json::Object& as_object() const;

  // Member lookup on an object; nullptr if absent or not an object.
  const Value* find(std::string_view key) const;

 private:
  std::variant<std::monostate, bool, double, std::string, json::Array, json::Object> data_;
};

// Short name of a type for error messages ("number", "object", ...).
const char* type_name(Value::Type type);

// Parses one JSON text. Throws FormatError "line L, column C (byte B): reason".
Value parse(std::string_view text);

// Pretty, deterministic JSON: sorted keys, shortest round-trip numbers, non-finite as null.
// Containers holding only a few scalars are written on one line.
std::string write(const Value& value, int indent = 2);

// A string as a JSON string literal (quotes and escapes), for messages and the writer.
std::string quote(std::string_view s);

}  // namespace json
}  // namespace hwnas
