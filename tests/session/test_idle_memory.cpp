// What an idle session keeps (doc/design.md "The connection"): after the
// greeting and EHLO, and again after a delivered message, it holds no
// input or output buffer and none of the state that exists only while a
// message, an AUTH exchange or a milter conversation is under way.
#include <doctest/doctest.h>

#include <string>

#include "server/session.h"
#include "session/harness.h"

using tern::server::Connection;
using tern::session_test::SessionHarness;

namespace {

// The capacity of an empty std::string that owns no heap block.
const size_t inline_capacity = std::string().capacity();

void check_holds_nothing(SessionHarness& h) {
	REQUIRE(h.with_session([](Connection& c) {
		CHECK(c.inbuf.capacity() == inline_capacity);
		CHECK(c.outbuf.capacity() == inline_capacity);
		CHECK(c.data == nullptr);
		CHECK(c.mechanism == nullptr);
		CHECK(c.milters == nullptr);
		CHECK(c.dovecot_auth == nullptr);
		CHECK_FALSE(c.stalled);
		CHECK(c.received.path.empty());
		CHECK_FALSE(c.received.spool.fd);
		CHECK(c.tx.recipients.capacity() == 0);
		CHECK(c.tx.early_spf == nullptr);
		CHECK(c.tx.early_dmarc == nullptr);
	}));
}

}  // namespace

TEST_CASE("session: an idle session holds no buffer, after EHLO and after a delivered message") {
	SessionHarness h;
	h.replies();
	CHECK(h.exchange("EHLO client.sender.example").rfind("250-", 0) == 0);
	check_holds_nothing(h);
	h.send(
	    "MAIL FROM:<bob@sender.example>\r\nRCPT TO:<alice@test.example>\r\nDATA\r\n"
	    "From: bob@sender.example\r\nTo: alice@test.example\r\nSubject: idle\r\n"
	    "Message-Id: <idle@sender.example>\r\n\r\nHello Alice.\r\n.\r\n");
	std::string replies = h.replies(4, 10);
	INFO(replies);
	CHECK(replies.find("\r\n250 2.2.0 it is done\r\n") != std::string::npos);
	REQUIRE(h.run_until([&] { return h.maildir_files("alice").size() == 1; }, 5));
	check_holds_nothing(h);
}
