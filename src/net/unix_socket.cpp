#include "net/unix_socket.h"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tern::net {

std::optional<sockaddr_un> unix_address(const std::string& path) {
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	if (path.size() >= sizeof addr.sun_path) return std::nullopt;
	std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
	return addr;
}

namespace {
// An empty descriptor with errno set to err (after the failed one closed).
UniqueFd failed(int err) {
	errno = err;
	return UniqueFd();
}
}  // namespace

UniqueFd listen_unix(const std::string& path, mode_t mode, int backlog) {
	auto addr = unix_address(path);
	if (!addr) return failed(ENAMETOOLONG);
	::unlink(path.c_str());
	UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (!fd) return failed(errno);
	// The mode holds from bind on: no moment with a wider one.
	mode_t old_mask = ::umask(static_cast<mode_t>(~mode & 0777));
	int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
	int err = errno;
	::umask(old_mask);
	if (rc != 0) return failed(err);
	if (::chmod(path.c_str(), mode) != 0 || ::listen(fd.get(), backlog) != 0) {
		err = errno;
		::unlink(path.c_str());
		return failed(err);
	}
	return fd;
}

UniqueFd connect_unix(const std::string& path) {
	auto addr = unix_address(path);
	if (!addr) return failed(ENAMETOOLONG);
	UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (!fd) return failed(errno);
	if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) return failed(errno);
	return fd;
}

bool send_all(int fd, std::string_view data) {
	while (!data.empty()) {
		ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) return false;
		data.remove_prefix(static_cast<size_t>(n));
	}
	return true;
}

void send_without_waiting(int fd, std::string_view data) {
	[[maybe_unused]] ssize_t sent = ::send(fd, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

}  // namespace tern::net
