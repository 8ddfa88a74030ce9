// Listening sockets (net/listener): a listener on a specific address knows
// its connections' local address from the bind, and an accepted connection
// tells its own through getsockname, the path every connection of a
// wildcard (0.0.0.0, ::) listener takes; which bind failures ternd starts
// without. Loopback only.
#include <doctest/doctest.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "net/listener.h"
#include "util/ipaddr.h"
#include "util/unique_fd.h"

using namespace tern;

namespace {

// A blocking client socket connected to `ip`:`port`; its own address goes
// to `client`.
UniqueFd connect_loopback(const IpAddr& ip, uint16_t port, net::SocketAddress& client) {
	sockaddr_storage ss{};
	socklen_t len = ip.to_sockaddr(port, ss);
	UniqueFd fd(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
	REQUIRE(fd);
	REQUIRE(connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0);
	auto self = net::local_address(fd.get());
	REQUIRE(self);
	client = *self;
	return fd;
}

config::Config one_listener(std::vector<std::string> ips) {
	config::Config cfg;
	config::Listener l;
	l.name = "test";
	l.ips = std::move(ips);
	l.smtp.enabled = true;
	l.smtp.port = 0;  // the kernel picks a free port
	cfg.listeners["test"] = l;
	return cfg;
}

}  // namespace

TEST_CASE("listener: a loopback listener records its bound address; an accepted connection's getsockname agrees") {
	std::vector<std::string> warnings;
	// ::1 may be missing where IPv6 is off: tolerated, as localserve does.
	auto sockets = net::open_listeners(one_listener({"127.0.0.1", "::1"}), true, warnings);
	REQUIRE(!sockets.empty());
	for (const net::ListenSocket& ls : sockets) {
		CAPTURE(ls.address);
		CHECK(ls.listener == "test");
		CHECK(ls.service == net::Service::smtp);
		REQUIRE(ls.bound);
		CHECK_FALSE(ls.bound->ip.unspecified());
		CHECK(ls.bound->port != 0);
		CHECK(ls.bound->ip.to_string() == (ls.bound->ip.v6 ? "::1" : "127.0.0.1"));

		net::SocketAddress client;
		UniqueFd out = connect_loopback(ls.bound->ip, ls.bound->port, client);
		net::SocketAddress peer;
		UniqueFd in = net::accept_connection(ls.fd.get(), peer);
		REQUIRE(in);
		// The peer comes with accept; the local address from getsockname.
		CHECK(peer.ip == client.ip);
		CHECK(peer.port == client.port);
		auto local = net::local_address(in.get());
		REQUIRE(local);
		CHECK(local->ip == ls.bound->ip);
		CHECK(local->port == ls.bound->port);
	}
}

TEST_CASE("listener: a socket that is not a socket has no local address") {
	int ends[2];
	REQUIRE(pipe2(ends, O_CLOEXEC) == 0);
	UniqueFd read_end(ends[0]), write_end(ends[1]);
	CHECK_FALSE(net::local_address(read_end.get()));
}

TEST_CASE("listener: an address that is not an IP, or one taken, is an error naming it") {
	CHECK_THROWS_WITH_AS(net::open_listen_socket("not-an-ip", 25), "listen not-an-ip:25: not an IP address",
	                     std::runtime_error);
	UniqueFd first = net::open_listen_socket("127.0.0.1", 0);
	auto bound = net::local_address(first.get());
	REQUIRE(bound);
	// SO_REUSEADDR does not let a second socket listen on a port in use.
	std::string taken = "listen 127.0.0.1:" + std::to_string(bound->port) + ": Address already in use";
	CHECK_THROWS_WITH_AS(net::open_listen_socket("127.0.0.1", bound->port), taken.c_str(), std::runtime_error);
}

TEST_CASE("listener: the error of an address that cannot be opened carries its errno") {
	UniqueFd first = net::open_listen_socket("127.0.0.1", 0);
	auto bound = net::local_address(first.get());
	REQUIRE(bound);
	try {
		net::open_listen_socket("127.0.0.1", bound->port);
		FAIL("a port in use was bound twice");
	} catch (const net::ListenError& e) {
		CHECK(e.error == EADDRINUSE);
	}
}

// A host without IPv6 (a kernel without it: EAFNOSUPPORT at socket();
// IPv6 turned off: EADDRNOTAVAIL at bind) cannot be made here, so the
// decision is tested alone; open_listeners applies it to each address.
TEST_CASE("listener: only the defaulted IPv6 wildcard may be missing on a host without IPv6") {
	using net::bind_failure_tolerated;
	// ips not in the config: "::" is "every IPv6 address there is".
	CHECK(bind_failure_tolerated("::", true, false, EAFNOSUPPORT));
	CHECK(bind_failure_tolerated("::", true, false, EADDRNOTAVAIL));
	// Other errors still stop the start: the port is taken, no permission.
	CHECK_FALSE(bind_failure_tolerated("::", true, false, EADDRINUSE));
	CHECK_FALSE(bind_failure_tolerated("::", true, false, EACCES));
	// The IPv4 wildcard never.
	CHECK_FALSE(bind_failure_tolerated("0.0.0.0", true, false, EAFNOSUPPORT));
	CHECK_FALSE(bind_failure_tolerated("0.0.0.0", true, false, EADDRNOTAVAIL));
	// An address the config names must be there, "::" included.
	CHECK_FALSE(bind_failure_tolerated("::", false, false, EAFNOSUPPORT));
	CHECK_FALSE(bind_failure_tolerated("::1", false, false, EADDRNOTAVAIL));
	CHECK_FALSE(bind_failure_tolerated("2001:db8::1", false, false, EADDRNOTAVAIL));
	// localserve goes on without any IPv6 address of its own.
	CHECK(bind_failure_tolerated("::1", false, true, EADDRNOTAVAIL));
	CHECK(bind_failure_tolerated("::1", false, true, EADDRINUSE));
	CHECK_FALSE(bind_failure_tolerated("127.0.0.1", false, true, EADDRINUSE));
}
