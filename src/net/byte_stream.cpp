// A non-blocking socket as a ByteStream; see byte_stream.h.
#include "net/byte_stream.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tern::net {

IoStatus FdStream::read(char* buf, std::size_t cap, std::size_t& n) {
	n = 0;
	for (;;) {
		ssize_t got = ::recv(fd_, buf, cap, 0);
		if (got > 0) {
			n = static_cast<std::size_t>(got);
			return IoStatus::ok;
		}
		if (got == 0) {
			error_ = "connection closed by peer";
			return IoStatus::closed;
		}
		if (errno == EINTR) continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) return IoStatus::want_read;
		// A reset while reading is an error, not an end: what the peer sent
		// before it is not acted on.
		error_ = std::strerror(errno);
		return IoStatus::error;
	}
}

IoStatus FdStream::write(const char* buf, std::size_t len, std::size_t& n) {
	n = 0;
	for (;;) {
		// MSG_NOSIGNAL: a peer that went away must give EPIPE, not SIGPIPE.
		ssize_t sent = ::send(fd_, buf, len, MSG_NOSIGNAL);
		if (sent >= 0) {
			n = static_cast<std::size_t>(sent);
			return IoStatus::ok;
		}
		if (errno == EINTR) continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) return IoStatus::want_write;
		error_ = std::strerror(errno);
		return errno == EPIPE || errno == ECONNRESET ? IoStatus::closed : IoStatus::error;
	}
}

}  // namespace tern::net
