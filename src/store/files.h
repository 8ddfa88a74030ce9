// Small file helpers for the disk layer. Blocking: worker threads only.
#pragma once
#include <string>
#include <string_view>

namespace tern::store {

// Creates `path` (which must not exist, mode 0600) holding `data`; no fsync
// (the caller's durable step, e.g. the queue's, syncs it). Throws
// std::runtime_error naming the path, after removing a partial file.
void write_new_file(const std::string& path, std::string_view data);

// The first `limit` bytes of `path` (all of a shorter file). Throws
// std::runtime_error naming the path when it cannot be read.
std::string read_file_head(const std::string& path, size_t limit);

}  // namespace tern::store
