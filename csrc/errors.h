// The error types of the native core and the helpers that format their messages. The bindings map
// each onto a Python exception; nothing here knows about Python.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace hwnas {

// Input data is malformed. Python: ValueError.
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A caller passed an invalid value. Python: ValueError.
class InvalidArgument : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A file does not exist. Python: FileNotFoundError.
class FileNotFound : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Any other I/O failure. Python: OSError.
class IOError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Keys absent from a latency table. Python: KeyError. The message lists at most 20 keys.
class MissingKeysError : public std::runtime_error {
 public:
  MissingKeysError(const std::string& context, std::vector<std::string> keys);
  const std::vector<std::string>& keys() const { return keys_; }

 private:
  std::vector<std::string> keys_;
};

// Shortest round-trip text of a double ("nan", "inf" when not finite), for messages.
std::string format_double(double x);

// A string in double quotes with quotes, backslashes and control bytes escaped, for messages.
std::string quote(const std::string& s);

// Quoted keys joined by ", ": at most 20, then "... and N more".
std::string format_key_list(const std::vector<std::string>& keys);

}  // namespace hwnas
