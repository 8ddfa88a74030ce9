// Scripted dialogues with one session: pipelining, suspended commands,
// completions after the client left, TLS over a wire that takes few bytes,
// every timeout, and the session faults of issue 8 (ChangeLog), each with
// the exact replies a client sees.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "sasl/secrets.h"
#include "session/harness.h"
#include "util/base64.h"

using namespace tern;
using namespace tern::session_test;

namespace {

const std::string greeting = "220 mx.test.example ESMTP tern " TERN_VERSION "\r\n";
const std::string noop_reply = "250 2.0.0 alrighty\r\n";

std::string plain_auth(const std::string& user, const std::string& password) {
	return "AUTH PLAIN " + base64_encode(std::string(1, '\0') + user + std::string(1, '\0') + password);
}

std::string read_file(const std::string& path) {
	std::ifstream in(path, std::ios::binary);
	std::ostringstream s;
	s << in.rdbuf();
	return s.str();
}

// The first header field `name` with its folds joined, without CRLF.
std::string header_field(const std::string& message, const std::string& name) {
	size_t at = ("\r\n" + message).find("\r\n" + name + ":");
	if (at == std::string::npos) return "";
	std::string field;
	for (size_t pos = at;;) {
		size_t eol = message.find("\r\n", pos);
		// Unfolded (RFC 5322 2.2.3), with the fold's tab read as a space.
		std::string line = message.substr(pos, eol - pos);
		if (!field.empty() && !line.empty() && line[0] == '\t') line[0] = ' ';
		field += line;
		pos = eol + 2;
		if (pos >= message.size() || (message[pos] != ' ' && message[pos] != '\t')) break;
	}
	return field;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
	return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

const std::string submission_no_tls = R"({"listeners": {"test": {"submission": {"require_starttls": false}}}})";

// A short message from bob@sender.example to alice, DATA included.
std::string transaction(const std::string& subject) {
	return "MAIL FROM:<bob@sender.example>\r\nRCPT TO:<alice@test.example>\r\nDATA\r\n"
	       "From: bob@sender.example\r\nTo: alice@test.example\r\nSubject: " +
	    subject + "\r\nMessage-Id: <" + subject + "@sender.example>\r\n\r\nHello Alice.\r\n.\r\n";
}

// The replies to a pipelined MAIL, RCPT, DATA and its message (four), and
// the one message then stored for `account`.
struct Stored {
	std::string replies;
	std::string message;
};
Stored replies_and_stored(SessionHarness& h, const std::string& account) {
	Stored out;
	out.replies = h.replies(4, 10);
	INFO(out.replies);
	REQUIRE(h.run_until([&] { return h.maildir_files(account).size() == 1; }, 5));
	out.message = read_file(h.maildir_files(account)[0]);
	return out;
}

}  // namespace

TEST_CASE("session: greeting, EHLO, NOOP and QUIT, exact bytes, then the session closes") {
	SessionHarness h;
	CHECK(h.replies() == greeting);
	std::string ehlo = h.exchange("EHLO client.sender.example");
	CHECK(ehlo.rfind("250-mx.test.example\r\n", 0) == 0);
	CHECK(ehlo.find("250-PIPELINING\r\n") != std::string::npos);
	CHECK(h.exchange("NOOP") == noop_reply);
	CHECK(h.exchange("QUIT") == "221 2.0.0 okay thanks bye\r\n");
	CHECK(h.run_until([&] { return !h.session_open(); }, 2));
}

TEST_CASE("session: commands pipelined behind a suspended command wait for it, then answer in order") {
	// MAIL FROM waits for the sender domain's DNS answer (RFC 5321 5.1):
	// the command is suspended while the NOOPs behind it sit in the buffer.
	SessionHarness h;
	h.dns().delay = 0.3;
	REQUIRE(h.replies() == greeting);
	REQUIRE(h.exchange("EHLO client.sender.example").rfind("250-", 0) == 0);
	auto start = std::chrono::steady_clock::now();
	h.send("MAIL FROM:<bob@sender.example>\r\nNOOP\r\nNOOP\r\n");
	// Nothing overtakes the suspended MAIL.
	h.run_until([] { return false; }, 0.1);
	CHECK(h.received().empty());
	std::string replies = h.replies(3);
	CHECK(seconds_since(start) >= 0.25);
	CHECK(replies == "250 2.1.0 looking good\r\n" + noop_reply + noop_reply);
}

TEST_CASE("session: a delivery that completes after the client left stores the message and closes") {
	SessionHarness h;
	REQUIRE(h.replies() == greeting);
	REQUIRE(h.exchange("EHLO client.sender.example").rfind("250-", 0) == 0);
	// The whole transaction and the hang-up in one go: the DATA's
	// analysis and the fsync'd write finish after the peer is gone, and
	// our replies cannot go anywhere.
	h.send(transaction("after-left"));
	h.close_client();
	CHECK(h.run_until([&] { return !h.session_open(); }, 5));
	CHECK(h.run_until([&] { return h.maildir_files("alice").size() == 1; }, 5));
}

TEST_CASE("session: a DNS answer that arrives after the client left finds no session and changes nothing") {
	SessionHarness h;
	h.dns().delay = 0.2;
	REQUIRE(h.replies() == greeting);
	REQUIRE(h.exchange("EHLO client.sender.example").rfind("250-", 0) == 0);
	h.send("MAIL FROM:<bob@sender.example>\r\n");
	h.run_until([] { return false; }, 0.05);
	h.close_client();
	h.wire().reset = true;
	h.run_until([] { return false; }, 0.05);
	CHECK(h.session_open());  // the lookup is still out: the session waits for it
	CHECK(h.run_until([&] { return !h.session_open(); }, 3));
	CHECK(h.received().empty());
}

TEST_CASE("session: STARTTLS over a wire that takes a few bytes at a time and refuses writes in between") {
	HarnessOptions o;
	o.tls = true;
	o.service = net::Service::submission;
	SessionHarness h(o);
	REQUIRE(h.replies() == greeting);
	REQUIRE(h.exchange("EHLO client.sender.example").find("250-STARTTLS\r\n") != std::string::npos);
	CHECK(h.exchange("STARTTLS") == "220 2.0.0 go!\r\n");
	h.wire().write_room = 0;
	h.start_client_tls();
	// The handshake read the ClientHello and now wants to write: the
	// session's interest is the write, and the wire refuses it.
	CHECK(h.run_until([&] { return h.wire().writes_refused > 0; }, 2));
	CHECK(h.wanted_io() == EV_WRITE);
	h.wire().write_room = std::numeric_limits<size_t>::max();
	h.wire().max_write = 7;
	CHECK(h.run_until([&] { return h.client_tls_done(); }, 5));
	std::string ehlo = h.exchange("EHLO client.sender.example");
	CHECK(ehlo.rfind("250-mx.test.example\r\n", 0) == 0);
	CHECK(ehlo.find("STARTTLS") == std::string::npos);
	// A reply held back by a full wire goes out once it drains.
	h.wire().write_room = 0;
	h.send("NOOP\r\n");
	h.run_until([] { return false; }, 0.05);
	CHECK(h.received().empty());
	CHECK((h.wanted_io() & EV_WRITE) != 0);
	h.wire().write_room = std::numeric_limits<size_t>::max();
	CHECK(h.replies() == noop_reply);
}

TEST_CASE("session: bytes pipelined after STARTTLS go to the handshake, never run as plaintext") {
	HarnessOptions o;
	o.tls = true;
	o.service = net::Service::submission;
	SessionHarness h(o);
	REQUIRE(h.replies() == greeting);
	REQUIRE(h.exchange("EHLO client.sender.example").rfind("250-", 0) == 0);
	h.send("STARTTLS\r\nNOOP\r\nNOOP\r\n");
	// The NOOPs are not a ClientHello: the handshake fails, the session
	// closes, and no plaintext reply follows the 220.
	CHECK(h.run_until([&] { return !h.session_open(); }, 3));
	CHECK(h.received() == "220 2.0.0 go!\r\n");
}

TEST_CASE("session: every timeout") {
	HarnessOptions o;
	o.tls = true;
	o.service = net::Service::submission;
	o.config_patch = R"({"listeners": {"test": {"submission": {"require_starttls": false}}},
	                     "timeouts_s": {"command": 1, "data_chunk": 1, "data_total": 5, "tls_handshake": 1}})";
	const std::string timeout_reply = "421 4.4.2 timeout, closing connection\r\n";
	auto start = std::chrono::steady_clock::now();

	SUBCASE("command") {
		SessionHarness h(o);
		REQUIRE(h.replies() == greeting);
		h.send("NOO");  // a partial line does not hold the deadline off
		CHECK(h.replies(1, 3) == timeout_reply);
	}
	SUBCASE("data") {
		o.service = net::Service::smtp;
		SessionHarness h(o);
		REQUIRE(h.replies() == greeting);
		REQUIRE(h.exchange("EHLO client.sender.example").rfind("250-", 0) == 0);
		h.send("MAIL FROM:<bob@sender.example>\r\nRCPT TO:<alice@test.example>\r\nDATA\r\n");
		REQUIRE(h.replies(3).find("354 ") != std::string::npos);
		h.send("Subject: never ends\r\n");
		CHECK(h.replies(1, 3) == timeout_reply);
	}
	SUBCASE("tls handshake") {
		SessionHarness h(o);
		REQUIRE(h.replies() == greeting);
		REQUIRE(h.exchange("EHLO client.sender.example").rfind("250-", 0) == 0);
		REQUIRE(h.exchange("STARTTLS") == "220 2.0.0 go!\r\n");
		// No ClientHello: the session closes without a word (there is no
		// channel to say it in).
		CHECK(h.run_until([&] { return !h.session_open(); }, 3));
		CHECK(h.received().empty());
	}
	SUBCASE("auth exchange") {
		SessionHarness h(o);
		REQUIRE(h.replies() == greeting);
		REQUIRE(h.exchange("EHLO client.sender.example").rfind("250-", 0) == 0);
		REQUIRE(h.exchange("AUTH LOGIN") == "334 VXNlcm5hbWU6\r\n");
		CHECK(h.replies(1, 3) == timeout_reply);
	}
	double took = seconds_since(start);
	CHECK(took >= 0.9);
	CHECK(took < 3);
}

TEST_CASE("faults: 5000 NOOPs pipelined in one write are all answered once the output drains") {
	SessionHarness h;
	REQUIRE(h.replies() == greeting);
	REQUIRE(h.exchange("EHLO client.sender.example").rfind("250-", 0) == 0);
	std::string batch;
	for (int i = 0; i < 5000; ++i) batch += "NOOP\r\n";
	h.wire().write_room = 0;  // the client reads nothing for now
	h.send(batch);
	h.run_until([] { return false; }, 0.1);
	CHECK(h.received().empty());
	h.wire().write_room = std::numeric_limits<size_t>::max();
	std::string replies = h.replies(5000, 10);
	CHECK(count_replies(replies) == 5000);
	CHECK(replies.find_first_not_of(noop_reply) == std::string::npos);
	CHECK(h.exchange("QUIT") == "221 2.0.0 okay thanks bye\r\n");
}

TEST_CASE("faults: slow mode from the third failed AUTH, one byte per delays_ms.bad_client, until a good AUTH") {
	const double delay = 0.02;
	HarnessOptions o;
	o.service = net::Service::submission;
	o.config_patch = R"({"listeners": {"test": {"submission": {"require_starttls": false}}},
	                     "delays_ms": {"bad_client": 20}})";
	SessionHarness h(o);
	h.env().set_password_secrets("alice", sasl::StoredSecrets::derive("right one").serialize());
	REQUIRE(h.replies() == greeting);
	REQUIRE(h.exchange("EHLO client.sender.example").rfind("250-", 0) == 0);
	for (int i = 0; i < 2; ++i)
		REQUIRE(h.exchange(plain_auth("alice@test.example", "wrong")).rfind("535 ", 0) == 0);
	auto start = std::chrono::steady_clock::now();
	CHECK(h.exchange("NOOP") == noop_reply);
	CHECK(seconds_since(start) < noop_reply.size() * delay / 2);

	REQUIRE(h.exchange(plain_auth("alice@test.example", "wrong"), 1, 10).rfind("535 ", 0) == 0);
	start = std::chrono::steady_clock::now();
	h.wire().max_write = std::numeric_limits<size_t>::max();
	size_t pieces = 0;
	h.send("NOOP\r\n");
	std::string got;
	h.run_until(
	    [&] {
		    if (h.received().size() > got.size()) ++pieces;
		    got = h.received();
		    return got == noop_reply;
	    },
	    5);
	CHECK(got == noop_reply);
	CHECK(pieces >= noop_reply.size() / 2);  // byte by byte, not one write
	CHECK(seconds_since(start) >= (noop_reply.size() - 1) * delay);
	h.forget_received();

	REQUIRE(h.exchange("AUTH LOGIN", 1, 10) == "334 VXNlcm5hbWU6\r\n");
	REQUIRE(h.exchange(base64_encode("alice@test.example"), 1, 10) == "334 UGFzc3dvcmQ6\r\n");
	REQUIRE(h.exchange(base64_encode("right one"), 1, 10) == "235 2.7.0 nice\r\n");
	start = std::chrono::steady_clock::now();
	CHECK(h.exchange("NOOP") == noop_reply);
	CHECK(seconds_since(start) < noop_reply.size() * delay / 2);
}

TEST_CASE("faults: localserve deliveries carry Authentication-Results: localhost; none") {
	HarnessOptions o;
	o.localserve = true;
	SessionHarness h(o);
	REQUIRE(h.replies().rfind("220 localhost ESMTP tern ", 0) == 0);
	REQUIRE(h.exchange("EHLO client.example").rfind("250-", 0) == 0);
	h.send(
	    "MAIL FROM:<sender@example.org>\r\nRCPT TO:<someone@example.com>\r\nDATA\r\n"
	    "Subject: localserve\r\n\r\nHello.\r\n.\r\n");
	auto [replies, stored] = replies_and_stored(h, "tern");
	CHECK(replies.find("\r\n250 2.2.0 it is done\r\n") != std::string::npos);
	CHECK(header_field(stored, "Authentication-Results") == "Authentication-Results: localhost; none");
}

TEST_CASE("faults: a listener's hostname stays out of Received by and the Authentication-Results authserv-id") {
	HarnessOptions o;
	o.config_patch = R"({"listeners": {"test": {"hostname": "listener.test.example"}}})";
	SessionHarness h(o);
	CHECK(h.replies() == "220 listener.test.example ESMTP tern " TERN_VERSION "\r\n");
	CHECK(h.exchange("EHLO client.sender.example").rfind("250-listener.test.example\r\n", 0) == 0);
	h.send(transaction("hostnames"));
	std::string stored = replies_and_stored(h, "alice").message;
	INFO(stored);
	CHECK(header_field(stored, "Authentication-Results").rfind("Authentication-Results: mx.test.example;", 0) == 0);
	CHECK(header_field(stored, "Received").find(" by mx.test.example (") != std::string::npos);
	CHECK(header_field(stored, "Received").find("listener.test.example") == std::string::npos);
}

TEST_CASE("session: exact bytes of EHLO's lines, DATA's 354, BDAT chunks to BDAT 0 LAST, and an empty 334") {
	SUBCASE("port 25") {
		SessionHarness h;
		REQUIRE(h.replies() == greeting);
		// RFC 5321 4.2.1: one reply of several lines, the last with a space.
		CHECK(h.exchange("EHLO client.sender.example") ==
		      "250-mx.test.example\r\n250-PIPELINING\r\n250-SIZE " +
		          std::to_string(config::default_max_message_size) +
		          "\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-DSN\r\n"
		          "250-LIMITS RCPTMAX=100 MAILMAX=1000\r\n250 SMTPUTF8\r\n");
		// RFC 3030 2: a reply per chunk, once its octets are read; BDAT 0
		// LAST ends the message without octets.
		const std::string chunk = "Subject: chunked\r\n\r\nHello Alice.\r\n";
		h.send("MAIL FROM:<bob@sender.example>\r\nRCPT TO:<alice@test.example>\r\nBDAT " +
		       std::to_string(chunk.size()) + "\r\n" + chunk + "BDAT 0 LAST\r\n");
		CHECK(h.replies(4, 10) ==
		      "250 2.1.0 looking good\r\n250 2.1.0 now on the list\r\n250 2.0.0 " +
		          std::to_string(chunk.size()) + " octets received\r\n250 2.2.0 it is done\r\n");
		REQUIRE(h.run_until([&] { return h.maildir_files("alice").size() == 1; }, 5));
		// DATA: the 354 goes out before the message is read.
		h.send("MAIL FROM:<bob@sender.example>\r\nRCPT TO:<alice@test.example>\r\nDATA\r\n");
		CHECK(h.replies(3) ==
		      "250 2.1.0 looking good\r\n250 2.1.0 now on the list\r\n354 see you at the bare dot\r\n");
		CHECK(h.exchange("Subject: dotted\r\n\r\nHello.\r\n.", 1, 10) == "250 2.2.0 it is done\r\n");
	}
	SUBCASE("submission: AUTH PLAIN without an initial response") {
		HarnessOptions o;
		o.service = net::Service::submission;
		o.config_patch = submission_no_tls;
		SessionHarness h(o);
		h.env().set_password_secrets("alice", sasl::StoredSecrets::derive("right one").serialize());
		REQUIRE(h.replies() == greeting);
		REQUIRE(h.exchange("EHLO client.sender.example").rfind("250-", 0) == 0);
		// RFC 4954 4: an empty challenge is "334" and a space.
		CHECK(h.exchange("AUTH PLAIN") == "334 \r\n");
		std::string credentials = std::string(1, '\0') + "alice@test.example" + std::string(1, '\0') +
		    "right one";
		CHECK(h.exchange(base64_encode(credentials)) == "235 2.7.0 nice\r\n");
		CHECK(h.exchange("NOOP") == noop_reply);
	}
}

// The "timeout" localparts stall an hour, then answer 451 naming the step,
// with the model's enhanced code for each step. The test stands in for the
// hour by restarting the session's deadline timer with a moment, once the
// session waits on it with nothing answered.
TEST_CASE("faults: localserve's timeout localparts answer 451 after the stall, with each step's enhanced code") {
	struct Case {
		net::Service service;
		std::string login;
		std::string transaction;
		size_t replies_before;
		std::string reply;
	};
	const std::string body = "DATA\r\nFrom: tern@localhost\r\nSubject: stall\r\n\r\nHello.\r\n.\r\n";
	const Case cases[] = {
	    {net::Service::smtp, "", "MAIL FROM:<mailfromtimeout@example.org>\r\n", 0,
	     "451 4.3.0 timing out command due to special localpart"},
	    {net::Service::smtp, "", "MAIL FROM:<a@example.org>\r\nRCPT TO:<timeout@example.com>\r\n" + body, 3,
	     "451 4.0.0 timing out delivery due to special localpart"},
	    {net::Service::submission, plain_auth("tern@localhost", "terntern"),
	     "MAIL FROM:<tern@localhost>\r\nRCPT TO:<timeout@example.com>\r\n" + body, 3,
	     "451 4.3.0 timing out submission due to special localpart"},
	};
	for (const Case& c : cases) {
		INFO(c.reply);
		HarnessOptions o;
		o.localserve = true;
		o.service = c.service;
		SessionHarness h(o);
		REQUIRE(h.replies().rfind("220 ", 0) == 0);
		REQUIRE(h.exchange("EHLO client.example").rfind("250-", 0) == 0);
		if (!c.login.empty()) {
			// As ternd sets it up for localserve.
			h.env().set_password_secrets("tern", sasl::StoredSecrets::derive("terntern").serialize());
			std::string auth = h.exchange(c.login);
			INFO(auth);
			REQUIRE(auth.rfind("235 ", 0) == 0);
		}
		h.send(c.transaction);
		std::string before = h.replies(c.replies_before, 10);
		INFO(before);
		auto stalled = [&] {
			bool waiting = false;
			h.with_session([&](server::Connection& s) {
				waiting = s.state == server::SessionState::waiting && s.stalled != nullptr;
			});
			return waiting;
		};
		bool did_stall = h.run_until(stalled, 10);
		std::string early = h.received();
		INFO(early);
		REQUIRE(did_stall);
		CHECK(early.empty());
		h.with_session([](server::Connection& s) { s.deadline.start(0.01); });
		// A local error: the received-id follows the text, as on every 451.
		std::string reply = h.replies(1, 5);
		CHECK(reply.rfind(c.reply + " (", 0) == 0);
		CHECK(reply.ends_with(")\r\n"));
		CHECK(h.maildir_files("tern").empty());
	}
}

TEST_CASE("faults: a header section that cannot be read is reported as dkim=none with the reason, as the model does") {
	SessionHarness h;
	REQUIRE(h.replies() == greeting);
	REQUIRE(h.exchange("EHLO client.sender.example").rfind("250-", 0) == 0);
	h.send(
	    "MAIL FROM:<bob@sender.example>\r\nRCPT TO:<alice@test.example>\r\nDATA\r\n"
	    "From: bob@sender.example\r\nbad header line\r\n\r\nbody\r\n.\r\n");
	std::string stored = replies_and_stored(h, "alice").message;
	INFO(stored);
	CHECK(header_field(stored, "Authentication-Results")
	          .find(" dkim=none reason=\"dkim: mail message header is malformed: ") != std::string::npos);
	CHECK(header_field(stored, "Authentication-Results").find("no dkim signatures") == std::string::npos);
}
