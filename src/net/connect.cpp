// Non-blocking outgoing stream sockets; see connect.h.
#include "net/connect.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net/unix_socket.h"
#include "util/ipaddr.h"

namespace tern::net {

namespace {

// The address to connect to; false (and `error`) when there is none.
bool target_address(const std::string& unix_path, const std::string& ip, int port, sockaddr_storage& ss, socklen_t& len,
                    std::string& error) {
	if (!unix_path.empty()) {
		auto addr = unix_address(unix_path);
		if (!addr) {
			error = "socket path too long: " + unix_path;
			return false;
		}
		std::memcpy(&ss, &*addr, sizeof *addr);
		len = sizeof *addr;
		return true;
	}
	auto parsed = IpAddr::parse(ip);
	if (!parsed) {
		error = "bad address " + ip;
		return false;
	}
	len = parsed->to_sockaddr(port, ss);
	return true;
}

}  // namespace

OutgoingStream connect_stream(const std::string& unix_path, const std::string& ip, int port) {
	OutgoingStream out;
	sockaddr_storage ss{};
	socklen_t len = 0;
	if (!target_address(unix_path, ip, port, ss, len, out.error)) return out;
	UniqueFd sock(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (!sock) {
		out.error = std::string("socket: ") + std::strerror(errno);
		return out;
	}
	const int fd = sock.get();  // the stream owns it from here on
	auto stream = std::make_unique<FdStream>(std::move(sock));
	int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&ss), len);
	if (rc != 0 && errno != EINPROGRESS) {
		// A unix socket says EAGAIN when its listener's backlog is full: a
		// refusal for now, like any other failure to connect.
		out.error = std::string("connect: ") + std::strerror(errno);
		return out;
	}
	out.in_progress = rc != 0;
	out.stream = std::move(stream);
	return out;
}

int connect_errno(const ByteStream& stream) {
	int err = 0;
	socklen_t len = sizeof err;
	if (::getsockopt(stream.fd(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
	return err;
}

std::string connect_result(const ByteStream& stream) {
	int err = connect_errno(stream);
	return err == 0 ? std::string() : std::string("connect: ") + std::strerror(err);
}

}  // namespace tern::net
