#include "server/message_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <span>

#include "message/header_scan.h"
#include "util/log.h"

namespace tern::server {

MessageFile::MessageFile(const std::string& path) : fd(open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
	if (!fd) open_error = errno;
}

std::optional<uint64_t> MessageFile::size() const {
	struct stat st {};
	if (fstat(fd.get(), &st) != 0) return std::nullopt;
	return static_cast<uint64_t>(st.st_size);
}

ssize_t MessageFile::read_at(char* buf, size_t len, uint64_t offset) const {
	ssize_t n;
	do n = pread(fd.get(), buf, len, static_cast<off_t>(offset));
	while (n < 0 && errno == EINTR);
	return n;
}

namespace {

using message::HeaderScan;
constexpr size_t header_slice = HeaderScan::slice_bytes;

// How a pass of read_chunks ended: the bytes it read, and whether a read
// failed (else the file ended, or the consumer had enough).
struct ReadEnd {
	uint64_t bytes = 0;
	bool failed = false;
};

// Feeds the file's bytes from `offset` on to `each`, `buf.size()` at a
// time, until the end of the file, a read error, or `each` returns false.
// A message file is complete before anyone reads it, and a read of a
// regular file comes back short only at its end: a short read ends the
// pass without another read to see 0 (one system call less per pass).
ReadEnd read_chunks(const MessageFile& file, uint64_t offset, std::span<char> buf,
                    const std::function<bool(std::string_view)>& each) {
	ReadEnd end;
	for (;;) {
		ssize_t n = file.read_at(buf.data(), buf.size(), offset + end.bytes);
		if (n < 0) {
			end.failed = true;
			return end;
		}
		if (n == 0) return end;
		end.bytes += static_cast<uint64_t>(n);
		if (!each(std::string_view(buf.data(), static_cast<size_t>(n)))) return end;
		if (static_cast<size_t>(n) < buf.size()) return end;
	}
}

}  // namespace

std::optional<std::string> MessageFile::read_header() const {
	HeaderScan scan;
	char buf[header_slice];
	ReadEnd end = read_chunks(*this, 0, buf, [&](std::string_view chunk) { return !scan.add(chunk); });
	if (end.failed) return std::nullopt;
	return scan.take();
}

std::optional<std::string> MessageFile::read_whole(const std::function<void(std::string_view)>& each,
                                                   int64_t& size) const {
	HeaderScan scan;
	char buf[64 * 1024];
	ReadEnd end = read_chunks(*this, 0, buf, [&](std::string_view chunk) {
		each(chunk);
		scan.add(chunk);
		return true;
	});
	size = static_cast<int64_t>(end.bytes);
	if (end.failed && !scan.done()) return std::nullopt;
	return scan.take();
}

std::optional<std::string> MessageFile::body_hash(size_t offset, mailauth::dkim::Canon canon,
                                                  mailauth::dkim::HashAlg hash, std::optional<int64_t> length) const {
	mailauth::dkim::BodyHasher hasher(canon, hash, length);
	char buf[65536];
	ReadEnd end = read_chunks(*this, offset, buf, [&](std::string_view chunk) {
		hasher.update(chunk);
		return true;
	});
	if (end.failed) return std::nullopt;
	return hasher.finish();
}

void remove_file_on_worker(core::WorkerPool& pool, std::string path, uint64_t log_id) {
	if (path.empty()) return;
	auto error = std::make_shared<int>(0);
	pool.submit([path, error] { *error = ::unlink(path.c_str()) == 0 || errno == ENOENT ? 0 : errno; },
	            [path, error, log_id] {
			    if (*error != 0)
				    log::event(log::Level::error, log_id, "removing message file",
			                       {{"path", path}, {"error", std::strerror(*error)}});
		    });
}

}  // namespace tern::server
