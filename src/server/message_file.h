// Reading a received message back from its temp file, on worker threads
// only: the header section whole (bounded), the body streamed through DKIM
// body hashers, never whole in memory.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <sys/types.h>

#include "core/worker_pool.h"
#include "mailauth/dkim.h"
#include "util/unique_fd.h"

namespace tern::server {

// Owns a read-only descriptor of a message file.
struct MessageFile {
	UniqueFd fd;
	int open_error = 0;  // errno of the open when it failed
	explicit MessageFile(const std::string& path);
	// Reads through a descriptor the caller opened (and hands over).
	explicit MessageFile(UniqueFd opened) : fd(std::move(opened)) {}
	MessageFile(const MessageFile&) = delete;
	MessageFile& operator=(const MessageFile&) = delete;
	bool ok() const { return fd.valid(); }

	// The file's size now; nullopt (errno set) when fstat fails.
	std::optional<uint64_t> size() const;
	// Up to `len` bytes from `offset` (retried on EINTR): the count read, 0
	// at the end of the file, -1 with errno set.
	ssize_t read_at(char* buf, size_t len, uint64_t offset) const;

	// The header section up to and including the empty line after it (or
	// the whole file when there is none). nullopt on a read error or a
	// header over 1 MiB.
	std::optional<std::string> read_header() const;
	// One pass over the whole file: every chunk goes to `each` in order,
	// and the header section is collected on the way (what read_header
	// returns). A read error ends the pass: `size` counts the bytes read,
	// and the header is nullopt when it was not complete by then.
	std::optional<std::string> read_whole(const std::function<void(std::string_view)>& each, int64_t& size) const;
	// DKIM body hash of the bytes from `offset` on (RFC 6376 3.7).
	std::optional<std::string> body_hash(size_t offset, mailauth::dkim::Canon canon, mailauth::dkim::HashAlg hash,
	                                     std::optional<int64_t> length = std::nullopt) const;
};

// Removes a message file that nobody needs any more, on a worker: an
// unlink is a write of the spool directory and, for the last link of a
// large file, frees its blocks; either can wait on the disk, the loop must
// not. The caller closes its own descriptors first, so the blocks are not
// freed by a close on the loop. A failure other than "already gone" is
// logged (with `log_id`) from the loop.
void remove_file_on_worker(core::WorkerPool& pool, std::string path, uint64_t log_id);

}  // namespace tern::server
