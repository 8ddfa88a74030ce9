// LocalClients (server/local_clients.h): the accept loop, the client limit,
// deadlines, with_client and the socket file of ternd's local sockets, on a
// private loop and a socket in a temp dir.
#include <doctest/doctest.h>

#include <ev.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "files.h"
#include "net/unix_socket.h"
#include "server/local_clients.h"

using tern::UniqueFd;
using tern::server::LocalClient;
using tern::server::LocalClients;

namespace {

struct EchoClient : LocalClient {
	using LocalClient::LocalClient;
	std::string got;
};

struct Fixture {
	struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
	tern::testing::TempDir dir;
	std::string path = dir.path + "/test.sock";
	std::vector<std::string> received;
	int deadlines = 0;
	std::unique_ptr<LocalClients<EchoClient>> clients;

	explicit Fixture(size_t max_clients = 8, double deadline_s = 30) {
		clients = std::make_unique<LocalClients<EchoClient>>(
		    loop, "test socket", max_clients, deadline_s,
		    LocalClients<EchoClient>::Hooks{
			[](UniqueFd fd) { return std::make_unique<EchoClient>(std::move(fd)); },
			[this](EchoClient& c, int) {
				char buf[64];
				ssize_t n = ::read(c.fd.get(), buf, sizeof buf);
				if (n <= 0) {
					c.dead = true;
					return;
				}
				c.got.append(buf, static_cast<size_t>(n));
				received.push_back(c.got);
			},
			[this](EchoClient& c) {
				++deadlines;
				c.dead = true;
			},
			""});
		UniqueFd fd = tern::net::listen_unix(path, 0600, 16);
		REQUIRE(fd.valid());
		clients->listen(std::move(fd), path);
		clients->start();
	}
	~Fixture() {
		clients.reset();
		ev_loop_destroy(loop);
	}
	void run(int rounds = 5) {
		for (int i = 0; i < rounds; ++i) ev_run(loop, EVRUN_NOWAIT);
	}
	UniqueFd connect() {
		UniqueFd fd = tern::net::connect_unix(path);
		REQUIRE(fd.valid());
		return fd;
	}
};

bool exists(const std::string& path) {
	struct stat st;
	return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

TEST_CASE("local clients: accepted clients get their events; a client that leaves is erased") {
	Fixture f;
	UniqueFd a = f.connect();
	UniqueFd b = f.connect();
	f.run();
	CHECK(f.clients->size() == 2);
	REQUIRE(::write(a.get(), "hello", 5) == 5);
	f.run();
	REQUIRE(f.received.size() == 1);
	CHECK(f.received[0] == "hello");
	a.reset();
	f.run();
	CHECK(f.clients->size() == 1);
	b.reset();
	f.run();
	CHECK(f.clients->size() == 0);
}

TEST_CASE("local clients: past the limit a connection is closed at accept") {
	Fixture f(1);
	UniqueFd first = f.connect();
	f.run();
	UniqueFd second = f.connect();
	f.run();
	CHECK(f.clients->size() == 1);
	char c;
	CHECK(::read(second.get(), &c, 1) == 0);  // closed by the server
}

TEST_CASE("local clients: the deadline drops an idle client") {
	Fixture f(8, 0.05);
	UniqueFd idle = f.connect();
	f.run();
	CHECK(f.clients->size() == 1);
	for (int i = 0; i < 100 && f.clients->size() != 0; ++i) {
		::usleep(5000);
		f.run(1);
	}
	CHECK(f.deadlines == 1);
	CHECK(f.clients->size() == 0);
}

TEST_CASE("local clients: with_client reaches a live client only; stop removes the socket file") {
	Fixture f;
	UniqueFd a = f.connect();
	f.run();
	REQUIRE(f.clients->size() == 1);
	tern::core::ConnHandle handle;
	// The one way in from a completion: a stale handle finds nothing.
	int reached = 0;
	f.clients->with_client(handle, [&](EchoClient&) { ++reached; });
	CHECK(reached == 0);
	CHECK(exists(f.path));
	f.clients->stop();
	CHECK_FALSE(exists(f.path));
	CHECK_FALSE(f.clients->listening());
	CHECK(f.clients->size() == 1);  // clients in progress finish
}
