// Clients that try to outlast or outwit the session: commands pipelined
// behind STARTTLS, a peer that stops reading the 421 of a timeout, BDAT
// chunks that keep a transaction alive past data_total, EHLOs pipelined
// faster than the milters take them.
#include <doctest/doctest.h>

#include <limits>

#include "server/milter.h"
#include "server/session.h"
#include "session/harness.h"

using namespace tern;
using namespace tern::session_test;

namespace {

const std::string greeting = "220 mx.test.example ESMTP tern " TERN_VERSION "\r\n";

bool in_state(SessionHarness& h, server::SessionState state) {
	bool is = false;
	h.with_session([&](server::Connection& c) { is = c.state == state; });
	return is;
}

}  // namespace

TEST_CASE("session: a command pipelined behind STARTTLS is never run in plaintext") {
	HarnessOptions o;
	o.tls = true;
	SessionHarness h(o);
	h.dns().delay = 1.0;  // a MAIL FROM would wait on its lookups
	REQUIRE(h.replies() == greeting);
	REQUIRE(h.exchange("EHLO client.sender.example").find("STARTTLS") != std::string::npos);
	// The 220 cannot go out yet: the client has stopped reading.
	h.wire().write_room = 0;
	h.send("STARTTLS\r\nMAIL FROM:<bob@sender.example>\r\n");
	h.run_until([] { return false; }, 0.2);
	// RFC 3207 4.2: the MAIL was not taken as a command of the plaintext
	// session (it would be waiting on its lookups now).
	CHECK(in_state(h, server::SessionState::command));
	bool has_mail = true;
	h.with_session([&](server::Connection& c) { has_mail = c.tx.has_mail; });
	CHECK_FALSE(has_mail);
	// Once the 220 leaves, the bytes after STARTTLS go to the handshake,
	// where plaintext is no TLS record: the session ends.
	h.wire().write_room = std::numeric_limits<size_t>::max();
	CHECK(h.replies() == "220 2.0.0 go!\r\n");
	CHECK(h.run_until([&] { return !h.session_open(); }, 5));
}

TEST_CASE("session: SIGTERM while the 220 to STARTTLS waits to leave: the handshake runs, the 421 comes inside TLS") {
	HarnessOptions o;
	o.tls = true;
	SessionHarness h(o);
	REQUIRE(h.replies() == greeting);
	REQUIRE(h.exchange("EHLO client.sender.example").find("STARTTLS") != std::string::npos);
	h.wire().write_room = 0;  // the client is not reading yet
	h.send("STARTTLS\r\n");
	REQUIRE(h.run_until([&] { return h.wire().writes_refused > 0; }, 2));
	// What a SIGTERM does to each session (Server::begin_shutdown).
	REQUIRE(h.with_session([](server::Connection& c) { c.shutdown_notice(); }));
	h.wire().write_room = std::numeric_limits<size_t>::max();
	// Only the 220: a plaintext 421 behind it would be read by the client's
	// TLS stack as a broken record.
	REQUIRE(h.run_until([&] { return h.received().find("\r\n") != std::string::npos; }, 2));
	h.run_until([] { return false; }, 0.1);
	CHECK(h.received() == "220 2.0.0 go!\r\n");
	h.forget_received();
	h.start_client_tls();
	REQUIRE(h.run_until([&] { return h.client_tls_done(); }, 5));
	CHECK(h.replies() == "421 4.3.2 shutting down\r\n");
	CHECK(h.run_until([&] { return !h.session_open(); }, 5));
}

TEST_CASE("session: slow mode starting while a TLS record waits to leave: the record goes out, then a byte at a time") {
	// The record mbedTLS holds after a short write must be offered again
	// whole; slow mode's one-byte writes came with fewer bytes, which the
	// TLS layer refuses (the session used to close on it).
	HarnessOptions o;
	o.tls = true;
	o.config_patch = R"({"delays_ms": {"bad_client": 20}})";
	SessionHarness h(o);
	REQUIRE(h.replies() == greeting);
	REQUIRE(h.exchange("EHLO client.sender.example").find("STARTTLS") != std::string::npos);
	REQUIRE(h.exchange("STARTTLS") == "220 2.0.0 go!\r\n");
	h.start_client_tls();
	REQUIRE(h.run_until([&] { return h.client_tls_done(); }, 5));
	h.wire().write_room = 10;  // part of the next record, then nothing
	h.send("EHLO client.sender.example\r\n");
	REQUIRE(h.run_until([&] { return h.wire().writes_refused > 0; }, 2));
	REQUIRE(h.with_session([](server::Connection& c) { c.flags.slow = true; }));
	h.wire().write_room = std::numeric_limits<size_t>::max();
	std::string ehlo = h.replies(1, 10);
	CHECK(ehlo.rfind("250-mx.test.example\r\n", 0) == 0);
	CHECK(h.session_open());
}

TEST_CASE("session: after a timeout's 421 that the peer never reads, the connection still closes") {
	HarnessOptions o;
	o.config_patch = R"({"timeouts_s": {"command": 1}})";
	SessionHarness h(o);
	REQUIRE(h.replies() == greeting);
	h.wire().write_room = 0;  // a zero window from now on
	h.send("NOOP\r\n");
	REQUIRE(h.run_until([&] { return in_state(h, server::SessionState::closing); }, 3));
	// The closing state's own deadline (10 s) ends it.
	CHECK(h.run_until([&] { return !h.session_open(); }, 13));
}

TEST_CASE("session: BDAT chunks that come with their commands do not extend data_total") {
	HarnessOptions o;
	o.config_patch = R"({"timeouts_s": {"command": 5, "data_chunk": 5, "data_total": 2}})";
	SessionHarness h(o);
	REQUIRE(h.replies() == greeting);
	REQUIRE(h.exchange("EHLO client.sender.example").rfind("250-", 0) == 0);
	h.send("MAIL FROM:<bob@sender.example>\r\nRCPT TO:<alice@test.example>\r\n");
	REQUIRE(h.replies(2).find("250 ") != std::string::npos);
	h.send("BDAT 12\r\nSubject: x\r\n");
	REQUIRE(h.replies(1).rfind("250 ", 0) == 0);
	// One chunk a second: the transaction is out of time after 2 s.
	std::string last;
	for (int i = 0; i < 5 && h.session_open(); ++i) {
		h.run_until([] { return false; }, 1.0);
		h.send("BDAT 3\r\nX\r\n");
		last = h.replies(1, 2);
		if (last.rfind("250 ", 0) != 0) break;
	}
	CHECK(last == "421 4.4.2 timeout, closing connection\r\n");
	CHECK(h.run_until([&] { return !h.session_open(); }, 3));
}

TEST_CASE("session: pipelined EHLOs do not pile up milter stages") {
	HarnessOptions o;
	// A milter that cannot be reached: each stage waits its turn behind
	// the attempt to reach it.
	o.config_patch =
	    R"({"listeners": {"test": {"milters": [{"address": "unix:/nonexistent/milter.sock", "default_action": "accept"}]}}})";
	SessionHarness h(o);
	REQUIRE(h.replies() == greeting);
	std::string batch;
	for (int i = 0; i < 2000; ++i) batch += "EHLO a.example\r\n";
	batch += "MAIL FROM:<bob@sender.example>\r\n";
	h.send(batch);
	size_t most_waiting = 0;
	bool answered = false;
	h.run_until(
	    [&] {
		    h.with_session([&](server::Connection& c) {
			    if (c.milters) most_waiting = std::max(most_waiting, c.milters->stages_waiting());
		    });
		    answered = h.received().find("250 2.1.0") != std::string::npos;
		    h.forget_received();
		    return answered;
	    },
	    30);
	CHECK(answered);
	CHECK(most_waiting <= 1);
}
