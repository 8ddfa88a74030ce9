#include "store/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tern::store {

void write_new_file(const std::string& path, std::string_view data) {
	int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) throw std::runtime_error("create " + path + ": " + std::strerror(errno));
	size_t off = 0;
	while (off < data.size()) {
		ssize_t n = ::write(fd, data.data() + off, data.size() - off);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			::close(fd);
			::unlink(path.c_str());
			throw std::runtime_error("write " + path + ": " + std::strerror(e));
		}
		off += static_cast<size_t>(n);
	}
	if (::close(fd) != 0) {
		int e = errno;
		::unlink(path.c_str());
		throw std::runtime_error("close " + path + ": " + std::strerror(e));
	}
}

}  // namespace tern::store
