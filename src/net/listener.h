// Listening sockets. They are opened before privileges are dropped (ports
// below 1024) and handed to the server, which accepts on them from the loop.
#pragma once
#include <string>
#include <vector>

#include "config/config.h"
#include "util/unique_fd.h"

namespace tern::net {

enum class Service { smtp, submission, submissions };
const char* service_name(Service);

struct ListenSocket {
	UniqueFd fd;
	std::string listener;  // name under "listeners"
	Service service = Service::smtp;
	std::string address;  // "ip:port" for logs
};

// Opens a non-blocking listening TCP socket; throws std::runtime_error
// naming the address on failure. IPv6 sockets are IPV6_V6ONLY so "::" and
// "0.0.0.0" can both be bound.
UniqueFd open_listen_socket(const std::string& ip, int port);

// Opens every enabled service of every listener. With `tolerate_ipv6_failure`
// (localserve), an IPv6 address that cannot be bound is skipped and reported
// in `warnings` instead of failing.
std::vector<ListenSocket> open_listeners(const config::Config& cfg, bool tolerate_ipv6_failure,
                                         std::vector<std::string>& warnings);

// accept4() with SOCK_NONBLOCK|SOCK_CLOEXEC; empty with errno set on failure.
UniqueFd accept_connection(int listen_fd);

}  // namespace tern::net
