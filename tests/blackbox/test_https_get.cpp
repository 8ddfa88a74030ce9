// The loop's HTTPS client (net/https_get, used for MTA-STS policies)
// against a server that sends its response one byte per TLS record: the
// loop must go on serving others and the request's own deadline must end
// it, however the bytes come.
#include <doctest/doctest.h>

#include <ev.h>

#include <chrono>
#include <string>

#include "helpers/daemon.h"
#include "helpers/tls_tools.h"
#include "mailauth/mta_sts.h"
#include "net/https_get.h"
#include "net/tls.h"
#include "ternctl_run.h"

using namespace tern;

namespace {

// Python's ssl module writes each send() as a record of its own.
const char* trickling_server = R"(
import socket, ssl, sys, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(1)
c, _ = ls.accept()
s = ctx.wrap_socket(c, server_side=True)
s.recv(4096)
data = b"HTTP/1.1 200 OK\r\n"
while len(data) < 30000:
    data += b"a:b\r\n"
for i in range(len(data)):
    s.send(data[i:i + 1])
time.sleep(60)
)";

double seconds_since(std::chrono::steady_clock::time_point t) {
	return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

TEST_CASE("https_get: a response trickled one byte per record neither stalls the loop nor outlives its deadline") {
	tern::testing::TestCa ca;
	tern::testing::TestCa::Issued cert = ca.issue("mta-sts.example.test");
	std::string dir = tern::testing::make_temp_dir();
	int port = tern::testing::free_tcp_port();
	pid_t server = tern::testing::spawn_child({tern::testing::debian_python(), "-c", trickling_server,
	                                           std::to_string(port), cert.cert_file, cert.key_file},
	                                          dir + "/server.log");
	REQUIRE(tern::testing::wait_child_listening(server, {port}));

	struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
	// A timer every 50 ms records the longest the loop went without
	// running it.
	struct Ticks {
		std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
		double longest_gap = 0;
	} ticks;
	ev_timer tick;
	ev_timer_init(
	    &tick,
	    [](struct ev_loop*, ev_timer* w, int) {
		    auto* t = static_cast<Ticks*>(w->data);
		    t->longest_gap = std::max(t->longest_gap, seconds_since(t->last));
		    t->last = std::chrono::steady_clock::now();
	    },
	    0.05, 0.05);
	tick.data = &ticks;
	ev_timer_start(loop, &tick);

	net::HttpsGetRequest req;
	req.ip = "127.0.0.1";
	req.port = port;
	req.host = "mta-sts.example.test";
	req.path = "/.well-known/mta-sts.txt";
	req.trust = std::make_shared<net::TlsClientContext>(ca.ca_file());
	req.timeout_s = 4;
	req.max_bytes = 64 * 1024 + 16 * 1024;
	req.complete = [](std::string_view raw) { return mailauth::mta_sts::http_response_complete(raw); };
	auto started = std::chrono::steady_clock::now();
	bool done = false;
	std::string error;
	double took = 0;
	net::HttpsGetHandle handle = net::https_get(loop, req, [&](net::HttpsGetResult result) {
		done = true;
		error = result.error;
		took = seconds_since(started);
		ev_break(loop, EVBREAK_ALL);
	});
	// Bounded: the request's 4 s, with room; a stalled loop overruns it.
	ev_timer guard;
	ev_timer_init(
	    &guard, [](struct ev_loop* l, ev_timer*, int) { ev_break(l, EVBREAK_ALL); }, 30, 0);
	ev_timer_start(loop, &guard);
	ev_run(loop, 0);
	ev_timer_stop(loop, &tick);
	ev_timer_stop(loop, &guard);
	handle.cancel();
	ev_loop_destroy(loop);
	tern::testing::stop_child(server);
	tern::testing::remove_tree(dir);

	REQUIRE(done);
	CAPTURE(error);
	CHECK(error.find("timeout after 4s") != std::string::npos);
	CHECK(took < 8);
	CHECK(ticks.longest_gap < 1.0);
}
