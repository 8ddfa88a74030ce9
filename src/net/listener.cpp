#include "net/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "util/ipaddr.h"

namespace tern::net {

const char* service_name(Service s) {
	switch (s) {
	case Service::smtp: return "smtp";
	case Service::submission: return "submission";
	case Service::submissions: return "submissions";
	}
	return "?";
}

namespace {

std::optional<SocketAddress> from_sockaddr_storage(const sockaddr_storage& ss) {
	auto ip = IpAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss));
	if (!ip) return std::nullopt;
	uint16_t port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port
	                                               : reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
	return SocketAddress{*ip, port};
}

// The address a listening socket is bound to, unless it is a wildcard,
// where each connection's local address differs.
std::optional<SocketAddress> specific_bound_address(int listen_fd) {
	auto bound = local_address(listen_fd);
	if (!bound || bound->ip.unspecified()) return std::nullopt;
	return bound;
}

}  // namespace

static std::string host_port(const std::string& ip, int port) {
	if (ip.find(':') != std::string::npos) return "[" + ip + "]:" + std::to_string(port);
	return ip + ":" + std::to_string(port);
}

UniqueFd open_listen_socket(const std::string& ip, int port) {
	auto addr = IpAddr::parse(ip);
	if (!addr) throw ListenError("listen " + host_port(ip, port) + ": not an IP address", 0);
	sockaddr_storage ss;
	socklen_t len = addr->to_sockaddr(port, ss);
	UniqueFd fd(socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (!fd) throw ListenError("listen " + host_port(ip, port) + ": socket: " + std::strerror(errno), errno);
	int one = 1;
	setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (addr->v6) setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd.get(), 1024) != 0)
		throw ListenError("listen " + host_port(ip, port) + ": " + std::strerror(errno), errno);
	return fd;
}

bool bind_failure_tolerated(const std::string& ip, bool ips_defaulted, bool localserve, int error) {
	auto addr = IpAddr::parse(ip);
	if (!addr || !addr->v6) return false;
	if (localserve) return true;  // its ::1 is its own choice, not the user's
	// The default ["0.0.0.0", "::"] means "every address there is": on a
	// host without IPv6 that is the IPv4 ones. A listener that named "::"
	// gets an error, as for any address it names.
	return ips_defaulted && addr->unspecified() && (error == EAFNOSUPPORT || error == EADDRNOTAVAIL);
}

std::vector<ListenSocket> open_listeners(const config::Config& cfg, bool localserve,
                                         std::vector<std::string>& warnings) {
	std::vector<ListenSocket> out;  // closed by their owners on an exception
	for (const auto& [name, l] : cfg.listeners) {
		const std::pair<Service, const config::ListenerService*> services[] = {
		    {Service::smtp, &l.smtp},
		    {Service::submission, &l.submission},
		    {Service::submissions, &l.submissions}};
		for (const auto& [svc, conf] : services) {
			if (!conf->enabled) continue;
			for (const auto& ip : l.ips) {
				try {
					UniqueFd fd = open_listen_socket(ip, conf->port);
					auto bound = specific_bound_address(fd.get());
					out.push_back(
					    ListenSocket{std::move(fd), name, svc, host_port(ip, conf->port), bound});
				} catch (const ListenError& e) {
					if (!bind_failure_tolerated(ip, l.ips_defaulted, localserve, e.error)) throw;
					warnings.push_back(std::string(e.what()) + "; listening on IPv4 only" +
					                   (localserve ? "" : " (listeners." + name + ".ips not set)"));
				}
			}
		}
	}
	return out;
}

UniqueFd accept_connection(int listen_fd, SocketAddress& peer) {
	sockaddr_storage ss{};
	socklen_t len = sizeof(ss);
	UniqueFd fd(accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
	if (fd) {
		auto address = from_sockaddr_storage(ss);
		peer = address ? *address : SocketAddress{};
	}
	return fd;
}

std::optional<SocketAddress> local_address(int fd) {
	sockaddr_storage ss{};
	socklen_t len = sizeof(ss);
	if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
	return from_sockaddr_storage(ss);
}

}  // namespace tern::net
