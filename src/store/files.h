// Small file helpers for the disk layer. Blocking: worker threads only.
#pragma once
#include <string>
#include <string_view>
#include <utility>

namespace tern::store {

// Creates `path` (which must not exist, mode 0600) holding `data`; no fsync
// (the caller's durable step, e.g. the queue's, syncs it). Throws
// std::runtime_error naming the path, after removing a partial file.
void write_new_file(const std::string& path, std::string_view data);

// A file to read: through `fd` when one is open (the caller keeps it open;
// reads are positional, from offset 0), else by opening `path`. A spool
// file in reuse is read through a descriptor of the session's own open of
// it: ext4 writes a file that was truncated to 0 back to the disk when the
// last descriptor of an open of it is closed (doc/design.md, Message path).
struct ReadableFile {
	ReadableFile(std::string file_path, int open_fd = -1) : path(std::move(file_path)), fd(open_fd) {}  // NOLINT
	std::string path;
	int fd = -1;
};

// The first `limit` bytes of `file` (all of a shorter file). Throws
// std::runtime_error naming the path when it cannot be read, or when the
// path names no regular file (opened without blocking: a FIFO never holds
// the caller).
std::string read_file_head(const ReadableFile& file, size_t limit);

}  // namespace tern::store
