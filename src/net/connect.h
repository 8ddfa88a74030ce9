// Outgoing connections of the loop's local clients (the LMTP client, the
// milter client): a non-blocking stream socket to a unix socket path or to
// an IP address and port, handed to a net::Transport as its ByteStream. The
// connect itself never blocks: when it is in progress the owner waits for
// the socket to become writable, then asks connect_result() how it ended.
#pragma once
#include <memory>
#include <string>

#include "net/byte_stream.h"

namespace tern::net {

struct OutgoingStream {
	std::unique_ptr<FdStream> stream;  // null when the connection could not start
	bool in_progress = false;          // wait until writable, then connect_result()
	std::string error;                 // why it could not start (stream null)
};

// Connects to `unix_path` when it is set, else to `ip` port `port`.
OutgoingStream connect_stream(const std::string& unix_path, const std::string& ip, int port);

// After a connect in progress made the socket writable: empty when the
// connection stands, else why it failed (the socket's pending error).
std::string connect_result(const ByteStream& stream);
// The same as an errno value, 0 when the connection stands, for callers
// that word the error themselves.
int connect_errno(const ByteStream& stream);

}  // namespace tern::net
