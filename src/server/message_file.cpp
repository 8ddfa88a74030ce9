#include "server/message_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "util/log.h"

namespace tern::server {

namespace {
constexpr size_t max_header_bytes = 1024 * 1024;
}

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

std::optional<std::string> MessageFile::read_header() const {
	std::string head;
	char buf[16384];
	for (;;) {
		ssize_t n = read_at(buf, sizeof buf, head.size());
		if (n < 0) return std::nullopt;
		if (n == 0) return head;
		size_t old = head.size();
		head.append(buf, static_cast<size_t>(n));
		// A message that starts with the empty line has an empty header.
		if (head.starts_with("\r\n")) return std::string("\r\n");
		size_t end = head.find("\r\n\r\n", old >= 3 ? old - 3 : 0);
		if (end != std::string::npos) {
			head.resize(end + 4);
			return head;
		}
		if (head.size() > max_header_bytes) return std::nullopt;
	}
}

std::optional<std::string> MessageFile::body_hash(size_t offset, mailauth::dkim::Canon canon,
                                                  mailauth::dkim::HashAlg hash, std::optional<int64_t> length) const {
	mailauth::dkim::BodyHasher hasher(canon, hash, length);
	char buf[65536];
	uint64_t pos = offset;
	for (;;) {
		ssize_t n = read_at(buf, sizeof buf, pos);
		if (n < 0) return std::nullopt;
		if (n == 0) break;
		hasher.update(std::string_view(buf, static_cast<size_t>(n)));
		pos += static_cast<uint64_t>(n);
	}
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
