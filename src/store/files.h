// Small file helpers for the disk layer. Blocking: worker threads only.
#pragma once
#include <cstdint>
#include <stdexcept>
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

// "<what> <path>: <strerror(err)>", marked when the disk is full
// (util/storage.h), so the session answers 452 4.3.1: as text, and as the
// exception the disk layer throws.
std::string file_error_text(std::string_view what, const std::string& path, int err);
std::runtime_error file_error(std::string_view what, const std::string& path, int err);

// Writes all of `data` to `fd`. Throws std::runtime_error naming `path`
// (marked when the disk is full, util/storage.h).
void write_all(int fd, std::string_view data, const std::string& path);

// Copies `size` bytes of `in_fd` from offset `start` to `out_fd`'s
// position; returns the bytes copied, fewer when the input ended sooner.
// The kernel copies them (copy_file_range(2)), so they never cross into
// user space; where it cannot (file systems that do not support it, or
// two of them on an older kernel) a fixed buffer streams them, so a large
// message never sits in memory. Explicit input offsets leave `in_fd`'s
// own offset, which other copies share, untouched. A failure throws
// std::runtime_error naming the file it happened on: reading `in_path`,
// writing `out_path` (marked when the disk is full, util/storage.h).
uint64_t copy_file_bytes(int in_fd, const std::string& in_path, int out_fd, const std::string& out_path, uint64_t start,
                         uint64_t size);

}  // namespace tern::store
