#include "store/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "util/storage.h"
#include "util/unique_fd.h"

namespace tern::store {

namespace {

constexpr size_t copy_buffer_size = 64 * 1024;

}  // namespace

std::string file_error_text(std::string_view what, const std::string& path, int err) {
	return system_error_text(std::string(what) + " " + path, err);
}

std::runtime_error file_error(std::string_view what, const std::string& path, int err) {
	return std::runtime_error(file_error_text(what, path, err));
}

void write_all(int fd, std::string_view data, const std::string& path) {
	while (!data.empty()) {
		ssize_t n = ::write(fd, data.data(), data.size());
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) throw file_error("write", path, n < 0 ? errno : EIO);
		data.remove_prefix(static_cast<size_t>(n));
	}
}

uint64_t copy_file_bytes(int in_fd, const std::string& in_path, int out_fd, const std::string& out_path, uint64_t start,
                         uint64_t size) {
	loff_t in_offset = static_cast<loff_t>(start);
	const loff_t end = static_cast<loff_t>(start + size);
	while (in_offset < end) {
		size_t want = static_cast<size_t>(std::min<loff_t>(end - in_offset, 1 << 30));
		ssize_t n = ::copy_file_range(in_fd, &in_offset, out_fd, nullptr, want, 0);
		if (n == 0) return static_cast<uint64_t>(in_offset) - start;
		if (n > 0) continue;
		if (errno == EINTR) continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			throw file_error("copy", in_path + " to " + out_path, errno);
		// Not supported here: what was copied stays, the rest goes through user space.
		break;
	}
	if (in_offset >= end) return size;
	std::string buffer(copy_buffer_size, '\0');
	uint64_t offset = static_cast<uint64_t>(in_offset);
	while (offset < start + size) {
		size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), start + size - offset));
		ssize_t n = ::pread(in_fd, buffer.data(), want, static_cast<off_t>(offset));
		if (n < 0) {
			if (errno == EINTR) continue;
			throw file_error("read", in_path, errno);
		}
		if (n == 0) return offset - start;
		write_all(out_fd, std::string_view(buffer.data(), static_cast<size_t>(n)), out_path);
		offset += static_cast<uint64_t>(n);
	}
	return size;
}

void write_new_file(const std::string& path, std::string_view data) {
	UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	if (!fd) throw file_error("create", path, errno);
	TempFile file(path);  // removed unless the whole of it was written and closed
	write_all(fd.get(), data, path);
	if (fd.close() != 0) throw file_error("close", path, errno);
	file.commit();
}

std::string read_file_head(const ReadableFile& file, size_t limit) {
	UniqueFd opened;
	int fd = file.fd;
	if (fd < 0) {
		// O_NONBLOCK: a FIFO put where a file was expected (a Maildir's
		// dovecot-keywords, a message) must not hold the worker forever;
		// anything but a regular file (a FIFO, /dev/zero) is refused.
		opened.reset(::open(file.path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
		if (!opened) throw std::runtime_error("cannot read " + file.path + ": " + std::strerror(errno));
		fd = opened.get();
	}
	struct stat st {};
	if (::fstat(fd, &st) != 0) throw std::runtime_error("cannot read " + file.path + ": " + std::strerror(errno));
	if (opened && !S_ISREG(st.st_mode))
		throw std::runtime_error("cannot read " + file.path + ": not a regular file");
	// The buffer is the file's size, not the limit: callers read small
	// files under limits of megabytes (the junk filter's counts, 8 MiB),
	// for every message. It grows, up to the limit, if the file did.
	constexpr size_t least = 4096;
	std::string text(std::min(limit, std::max(least, static_cast<size_t>(std::max<off_t>(st.st_size, 0)) + 1)),
	                 '\0');
	size_t got = 0;
	while (got < limit) {
		if (got == text.size()) text.resize(std::min(limit, text.size() * 2));
		ssize_t n = ::pread(fd, text.data() + got, text.size() - got, static_cast<off_t>(got));
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) throw std::runtime_error("reading " + file.path + ": " + std::strerror(errno));
		if (n == 0) break;
		got += static_cast<size_t>(n);
	}
	text.resize(got);
	return text;
}

}  // namespace tern::store
