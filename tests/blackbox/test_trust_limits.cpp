// Authentication limits that a client cannot sidestep (doc/behaviour.md §10,
// RFC 4954 4): a SCRAM login whose proof the server has already rejected
// counts as a failure even when the client hangs up before the final 535,
// and SIGHUP applies new limits.auth_failures_* to the running daemon.
#include "bb.h"

#include <chrono>
#include <csignal>
#include <ctime>
#include <thread>

#include "helpers/tls_tools.h"
#include "util/base64.h"

namespace {

const std::string alice = "alice@test.example";
const std::string alice_password = "correct horse 7 battery";
const char* const open_submission = R"({"listeners": {"test": {"submission": {"require_starttls": false}}}})";
const std::string refused_greeting = "421 4.7.0 too many auth failures";

// The auth-failure limiter counts in one-minute buckets aligned to the
// epoch; a test that must see several failures in one bucket starts early
// in a minute rather than straddle a boundary.
void wait_for_fresh_minute(int needed_s) {
	int64_t second = std::time(nullptr) % 60;
	if (second + needed_s >= 60) std::this_thread::sleep_for(std::chrono::seconds(60 - second));
}

void start_with_password(TernDaemon& d, const std::string& extra_patch = "") {
	d.write_config(extra_patch);
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", alice_password, &out), out);
	REQUIRE_MESSAGE(d.start(), d.error());
}

// What one login attempt met.
enum class Attempt { refused_at_greeting, invalid_proof, other };

// One SCRAM-SHA-256 login (RFC 5802 5, RFC 7677) with a made-up proof, on a
// fresh connection. The client reads the server-final `e=invalid-proof`
// and hangs up without answering it, as gsasl does.
Attempt wrong_scram_then_hang_up(TernDaemon& d, std::string& transcript) {
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	Reply greeting = c.read_reply();
	transcript = greeting.plain();
	if (greeting.plain() == refused_greeting) return Attempt::refused_at_greeting;
	if (greeting.code != 220 || c.cmd("EHLO client.sender.example").code != 250) return Attempt::other;
	const std::string client_nonce = "fyko+d2lbbFgONRv9qkxdawL";
	Reply first = c.cmd("AUTH SCRAM-SHA-256 " + base64("n,,n=" + alice + ",r=" + client_nonce));
	transcript += " | " + first.plain();
	if (first.code != 334) return Attempt::other;
	auto server_first = tern::base64_decode(first.text);
	if (!server_first || !starts_with(*server_first, "r=" + client_nonce)) return Attempt::other;
	std::string nonce = server_first->substr(2, server_first->find(',') - 2);
	// 32 bytes: the size of a SHA-256 proof, but not the right one.
	std::string proof(32, 'x');
	Reply final = c.cmd(base64("c=biws,r=" + nonce + ",p=" + base64(proof)));
	transcript += " | " + final.plain();
	c.close();
	return final.plain() == "334 " + base64("e=invalid-proof") ? Attempt::invalid_proof : Attempt::other;
}

// Three wrong PLAIN logins on one connection, each answered 535.
void three_wrong_plain_logins(TernDaemon& d) {
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	REQUIRE(c.greet_and_ehlo());
	for (int i = 0; i < 3; i++)
		REQUIRE(c.cmd("AUTH PLAIN " + plain_response(alice, "wrong")).plain() == "535 5.7.8 bad user/pass");
}

std::string greeting_of_new_connection(TernDaemon& d) {
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	return c.read_reply().plain();
}

// SIGHUP after rewriting the config; waits until the log says it is done.
void reload_with(TernDaemon& d, const std::string& patch) {
	auto reloads = [&] {
		std::string log = d.log_text();
		size_t n = 0;
		for (size_t at = log.find("configuration reloaded"); at != std::string::npos;
		     at = log.find("configuration reloaded", at + 1))
			n++;
		return n;
	};
	size_t before = reloads();
	d.write_config(patch);
	REQUIRE(d.signal(SIGHUP));
	int64_t deadline = now_ms() + 5000;
	while (reloads() == before && now_ms() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
	REQUIRE_MESSAGE(reloads() > before, log_tail(d));
}

}  // namespace

TEST_CASE("trust limits: SCRAM guesses that hang up after e=invalid-proof still count as failures") {
	TernDaemon d(daemon_options(true, false, open_submission, false));
	start_with_password(d, R"({"limits": {"auth_failures_per_min": [5, 30, 90]}})");
	REQUIRE_RUNNING(d);
	wait_for_fresh_minute(15);
	int invalid_proof = 0, refused = 0, other = 0;
	for (int i = 0; i < 8; i++) {
		std::string transcript;
		switch (wrong_scram_then_hang_up(d, transcript)) {
		case Attempt::invalid_proof: invalid_proof++; break;
		case Attempt::refused_at_greeting: refused++; break;
		case Attempt::other:
			other++;
			MESSAGE("attempt " << i << ": " << transcript);
			break;
		}
	}
	MESSAGE("scram guesses=8 answered_invalid_proof=" << invalid_proof << " refused=" << refused);
	CHECK(other == 0);
	// Five failures fill the per-minute limit; every later connection is
	// refused at the greeting.
	CHECK(invalid_proof == 5);
	CHECK(refused == 3);
	CHECK(d.running());
}

TEST_CASE("trust limits: a reload that changes auth_failures_per_min applies to the running daemon") {
	TernDaemon d(daemon_options(true, false, open_submission, false));
	start_with_password(d);  // default limits: 10 per minute for one address
	REQUIRE_RUNNING(d);
	wait_for_fresh_minute(20);
	three_wrong_plain_logins(d);
	CHECK(starts_with(greeting_of_new_connection(d), "220 "));

	// Lowered below the failures already counted: refused at once, no restart.
	reload_with(d, R"({"limits": {"auth_failures_per_min": [2, 30, 90]}})");
	CHECK(greeting_of_new_connection(d) == refused_greeting);

	// Raised again: the three failures stay counted but fit.
	reload_with(d, R"({"limits": {"auth_failures_per_min": [4, 30, 90]}})");
	CHECK(starts_with(greeting_of_new_connection(d), "220 "));
	three_wrong_plain_logins(d);  // now 6 > 4
	CHECK(greeting_of_new_connection(d) == refused_greeting);
}
