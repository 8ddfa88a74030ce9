#include "store/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "util/unique_fd.h"

namespace tern::store {

void write_new_file(const std::string& path, std::string_view data) {
	UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	if (!fd) throw std::runtime_error("create " + path + ": " + std::strerror(errno));
	TempFile file(path);  // removed unless the whole of it was written and closed
	size_t off = 0;
	while (off < data.size()) {
		ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) throw std::runtime_error("write " + path + ": " + std::strerror(n < 0 ? errno : EIO));
		off += static_cast<size_t>(n);
	}
	if (fd.close() != 0) throw std::runtime_error("close " + path + ": " + std::strerror(errno));
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
		struct stat st {};
		if (::fstat(opened.get(), &st) != 0)
			throw std::runtime_error("cannot read " + file.path + ": " + std::strerror(errno));
		if (!S_ISREG(st.st_mode)) throw std::runtime_error("cannot read " + file.path + ": not a regular file");
		fd = opened.get();
	}
	std::string text(limit, '\0');
	size_t got = 0;
	while (got < limit) {
		ssize_t n = ::pread(fd, text.data() + got, limit - got, static_cast<off_t>(got));
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) throw std::runtime_error("reading " + file.path + ": " + std::strerror(errno));
		if (n == 0) break;
		got += static_cast<size_t>(n);
	}
	text.resize(got);
	return text;
}

}  // namespace tern::store
