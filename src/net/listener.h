// Listening sockets. They are opened before privileges are dropped (ports
// below 1024) and handed to the server, which accepts on them from the loop.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.h"
#include "util/ipaddr.h"
#include "util/unique_fd.h"

namespace tern::net {

enum class Service { smtp, submission, submissions };
const char* service_name(Service);

// One end of a TCP connection.
struct SocketAddress {
	IpAddr ip;
	uint16_t port = 0;
};

struct ListenSocket {
	UniqueFd fd;
	std::string listener;  // name under "listeners"
	Service service = Service::smtp;
	std::string address;  // "ip:port" for logs
	// The bound address, read once at open when it is a specific one: every
	// connection accepted there has it as its local address, so accepting
	// needs no getsockname. Empty for a wildcard (0.0.0.0, ::) listener.
	std::optional<SocketAddress> bound;
};

// A listening socket that could not be opened: what() names the address
// and the error, `error` is the errno (0 when the text is no IP address).
class ListenError : public std::runtime_error {
public:
	ListenError(const std::string& what, int error) : std::runtime_error(what), error(error) {}
	int error;
};

// Opens a non-blocking listening TCP socket; throws ListenError naming the
// address on failure. IPv6 sockets are IPV6_V6ONLY so "::" and "0.0.0.0"
// can both be bound.
UniqueFd open_listen_socket(const std::string& ip, int port);

// Whether ternd starts without `ip` when it cannot listen there (`error`
// from ListenError): in localserve any IPv6 address; otherwise only the
// IPv6 wildcard of a listener whose ips were not configured, on a host
// without IPv6 (EAFNOSUPPORT: no IPv6 in the kernel; EADDRNOTAVAIL: IPv6
// turned off). An address the config names must be there.
bool bind_failure_tolerated(const std::string& ip, bool ips_defaulted, bool localserve, int error);

// Opens every enabled service of every listener. An address that cannot
// be bound stops it with ListenError, unless bind_failure_tolerated (with
// `localserve`) lets it go on without it: `warnings` then says which and why.
std::vector<ListenSocket> open_listeners(const config::Config& cfg, bool localserve,
                                         std::vector<std::string>& warnings);

// accept4() with SOCK_NONBLOCK|SOCK_CLOEXEC; empty with errno set on failure.
// The peer's address comes with the connection (no getpeername).
UniqueFd accept_connection(int listen_fd, SocketAddress& peer);

// The local address of a connected socket (getsockname), for connections
// on a wildcard listener; empty when the socket cannot tell.
std::optional<SocketAddress> local_address(int fd);

}  // namespace tern::net
