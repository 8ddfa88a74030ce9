// The resolver shares a query in flight (doc/design.md "DNS"): sessions
// that arrive together ask the DNS server once, and a session that leaves
// does not take the answer away from the others.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>

#include "bb.h"

namespace {

size_t count_queries(TernDaemon& d, const std::string& query) {
	auto seen = d.dns().queries();
	return static_cast<size_t>(std::count(seen.begin(), seen.end(), query));
}

// Polls for at most 5 s.
bool eventually(const std::function<bool()>& ready) {
	for (int i = 0; i < 500; ++i) {
		if (ready()) return true;
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	}
	return ready();
}

constexpr const char* client_ptr = "1.0.0.127.in-addr.arpa PTR";

}  // namespace

TEST_CASE("dns sharing: two sessions arriving together ask for the client's name once; one leaving keeps the other's") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	// The server holds its answers: the first session's reverse lookup,
	// asked at its greeting, stays on the wire.
	d.dns().set_silent(true);
	d.dns().clear_queries();
	SmtpClient first;
	REQUIRE(first.connect("127.0.0.1", d.smtp_port()));
	REQUIRE(first.read_reply().code == 220);
	REQUIRE(eventually([&] { return count_queries(d, client_ptr) == 1; }));
	SmtpClient second;
	REQUIRE(second.connect("127.0.0.1", d.smtp_port()));
	REQUIRE(second.read_reply().code == 220);
	// Long enough for the second session's own query to reach the server,
	// were it sent; shorter than the second or more before the resolver
	// sends the first one again.
	usleep(300000);
	CHECK(count_queries(d, client_ptr) == 1);

	// The first session goes while its query is still unanswered; the
	// second still gets an answer (the resent query's, or the timeout) and
	// its message is decided and delivered.
	first.close();
	d.dns().set_silent(false);
	REQUIRE(second.cmd("EHLO " + test_ehlo).code == 250);
	CHECK(send_mail(second, test_sender, {"alice@test.example"}, make_message("shared lookup")).reply.plain() ==
	      "250 2.2.0 it is done");
	auto files = wait_for_maildir(d.maildir(), 1);
	REQUIRE(files.size() == 1);
	CHECK(contains(read_file(files[0]), "iprev="));
}
