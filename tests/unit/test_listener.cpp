// Listening sockets (net/listener): a listener on a specific address knows
// its connections' local address from the bind, and an accepted connection
// tells its own through getsockname, the path every connection of a
// wildcard (0.0.0.0, ::) listener takes. Loopback only.
#include <doctest/doctest.h>

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
