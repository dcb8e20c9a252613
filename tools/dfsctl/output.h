// Output for dfsctl: aligned human tables and JSON for scripts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dfs {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void addRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// Minimal streaming JSON writer (objects, arrays, strings, numbers, booleans).
class JsonWriter {
 public:
  JsonWriter& beginObject();
  JsonWriter& endObject();
  JsonWriter& beginArray();
  JsonWriter& endArray();
  JsonWriter& key(const std::string& name);
  JsonWriter& value(const std::string& text);
  JsonWriter& value(const char* text) { return value(std::string(text)); }
  JsonWriter& value(uint64_t number);
  JsonWriter& value(int64_t number);
  JsonWriter& value(uint32_t number) { return value(uint64_t(number)); }
  JsonWriter& value(int number) { return value(int64_t(number)); }
  JsonWriter& value(double number);
  JsonWriter& value(bool flag);
  const std::string& str() const { return out_; }

 private:
  void separate();
  void writeString(const std::string& text);
  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool afterKey_ = false;
};

std::string humanBytes(uint64_t bytes);

}  // namespace dfs
