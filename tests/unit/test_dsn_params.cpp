// The DSN extension's parameter grammar (src/smtp/dsn_params.h): xtext,
// NOTIFY, RET, ENVID, ORCPT with the RFC 6533 UTF-8 forms; and the queue's
// pure rules around them (src/queue/outbound_util.h): which notices are
// due, the next hop's LIMITS, the TLS-Required header.
#include <doctest/doctest.h>

#include "queue/outbound_util.h"
#include "smtp/dsn_params.h"

using namespace tern::smtp;
using namespace tern::queue;

TEST_CASE("xtext decodes +HH and refuses what RFC 3461 4 does not allow") {
	CHECK(xtext_decode("abc") == std::optional<std::string>("abc"));
	CHECK(xtext_decode("a+2Bb+3Dc+20") == std::optional<std::string>("a+b=c "));
	CHECK(xtext_decode("") == std::optional<std::string>(""));
	CHECK_FALSE(xtext_decode("a+2"));
	CHECK_FALSE(xtext_decode("a+"));
	CHECK_FALSE(xtext_decode("a+2b"));  // lower-case hex
	CHECK_FALSE(xtext_decode("a+GG"));
	CHECK_FALSE(xtext_decode("a=b"));
	CHECK_FALSE(xtext_decode("a b"));
	CHECK_FALSE(xtext_decode("a\x01"));
	CHECK_FALSE(xtext_decode("j\xc3\xb6rg"));
	CHECK(xtext_encode("a+b=c d\xc3\xb6") == "a+2Bb+3Dc+20d+C3+B6");
	for (std::string s : {"", "plain", "+=+= \t\r\n", "\xff\x00\x7f"})
		CHECK(xtext_decode(xtext_encode(s)) == std::optional<std::string>(s));
}

TEST_CASE("NOTIFY and RET values") {
	CHECK(parse_notify("NEVER") == std::optional<uint8_t>(notify_never));
	CHECK(parse_notify("never") == std::optional<uint8_t>(notify_never));
	CHECK(parse_notify("FAILURE") == std::optional<uint8_t>(notify_failure));
	CHECK(parse_notify("DELAY,SUCCESS,FAILURE") ==
	      std::optional<uint8_t>(notify_success | notify_failure | notify_delay));
	CHECK_FALSE(parse_notify(""));
	CHECK_FALSE(parse_notify("NEVER,FAILURE"));
	CHECK_FALSE(parse_notify("FAILURE,NEVER"));
	CHECK_FALSE(parse_notify("DELAY,DELAY"));
	CHECK_FALSE(parse_notify(",DELAY"));
	CHECK_FALSE(parse_notify("SOMETIMES"));
	CHECK(notify_to_string(notify_delay | notify_success) == "SUCCESS,DELAY");
	CHECK(notify_to_string(notify_never) == "NEVER");
	CHECK(notify_to_string(0) == "");
	CHECK(parse_ret("Full") == std::optional<DsnRet>(DsnRet::full));
	CHECK(parse_ret("HDRS") == std::optional<DsnRet>(DsnRet::hdrs));
	CHECK_FALSE(parse_ret("HEADERS"));
	CHECK(ret_to_string(DsnRet::unset) == "");
	CHECK(ret_to_string(DsnRet::hdrs) == "HDRS");
}

TEST_CASE("ENVID: at most 100 characters, printable ASCII once decoded") {
	CHECK(parse_envid("QQ314159") == std::optional<std::string>("QQ314159"));
	CHECK(parse_envid("a+20b") == std::optional<std::string>("a b"));
	CHECK_FALSE(parse_envid(""));
	CHECK_FALSE(parse_envid(std::string(101, 'e')));
	CHECK_FALSE(parse_envid("a+0D+0Ab"));
	CHECK_FALSE(parse_envid("a+C3+B6"));
}

TEST_CASE("ORCPT: addr-type and xtext; utf-8-addr-xtext and -unitext (RFC 6533 3)") {
	auto o = parse_orcpt("rfc822;bob+2Bsub@example.com", false);
	REQUIRE(o);
	CHECK(*o == OriginalRecipient{"rfc822", "bob+sub@example.com"});
	CHECK(parse_orcpt("X-Local;some+20thing", false)->type == "x-local");
	CHECK_FALSE(parse_orcpt(";x@y", false));
	CHECK_FALSE(parse_orcpt("rfc822;", false));
	CHECK_FALSE(parse_orcpt("rfc822", false));
	CHECK_FALSE(parse_orcpt("rfc 822;x", false));
	CHECK_FALSE(parse_orcpt("rfc822;a+zz", false));
	CHECK_FALSE(parse_orcpt("rfc822;" + std::string(500, 'x'), false));

	o = parse_orcpt("utf-8;j\\x{F6}rg@\\x{1F600}.example", false);
	REQUIRE(o);
	CHECK(o->address == "j\xc3\xb6rg@\xf0\x9f\x98\x80.example");
	CHECK_FALSE(parse_orcpt("utf-8;j\xc3\xb6rg@example.com", false));  // unitext needs SMTPUTF8
	CHECK(parse_orcpt("utf-8;j\xc3\xb6rg@example.com", true)->address == "j\xc3\xb6rg@example.com");
	CHECK_FALSE(parse_orcpt("utf-8;j\xc3rg@example.com", true));  // not UTF-8
	CHECK_FALSE(parse_orcpt("utf-8;a\\x{}b", false));
	CHECK_FALSE(parse_orcpt("utf-8;a\\x{D800}b", false));  // a surrogate
	// Control characters once decoded: CR LF would start a field of the
	// notice the address is copied into.
	CHECK_FALSE(parse_orcpt("rfc822;a+0D+0AX-Evil:+20yes", false));
	CHECK_FALSE(parse_orcpt("rfc822;nul+00here", false));
	CHECK_FALSE(parse_orcpt("rfc822;del+7F", false));
	CHECK_FALSE(parse_orcpt("utf-8;u\\x{D}\\x{A}X-Evil:\\x{20}yes", true));
	CHECK_FALSE(parse_orcpt("utf-8;tab\\x{9}", false));
	CHECK(parse_orcpt("rfc822;a+20b@example.com", false)->address == "a b@example.com");
	CHECK_FALSE(parse_orcpt("utf-8;a\\x{110000}b", false));
	CHECK_FALSE(parse_orcpt("utf-8;a\\x{F6", false));
	CHECK_FALSE(parse_orcpt("utf-8;a+b", false));

	// Stored and passed on.
	OriginalRecipient u{"utf-8", "j\xc3\xb6rg+x@example.com"};
	CHECK(orcpt_to_stored(u) == "utf-8;j\xc3\xb6rg+x@example.com");
	CHECK(orcpt_from_stored(orcpt_to_stored(u)) == std::optional<OriginalRecipient>(u));
	CHECK(orcpt_to_param(u) == "utf-8;j\\x{F6}rg\\x{2B}x@example.com");
	CHECK(parse_orcpt(orcpt_to_param(u), false) == std::optional<OriginalRecipient>(u));
	OriginalRecipient a{"rfc822", "a=b@example.com"};
	CHECK(orcpt_to_param(a) == "rfc822;a+3Db@example.com");
	CHECK(parse_orcpt(orcpt_to_param(a), false) == std::optional<OriginalRecipient>(a));
	CHECK_FALSE(orcpt_from_stored("no-separator"));
}

TEST_CASE("which DSNs NOTIFY asks for (RFC 3461 4.1)") {
	// Not given: failures and delays, no successes.
	CHECK(dsn_wanted(0, DsnEvent::failure));
	CHECK(dsn_wanted(0, DsnEvent::delay));
	CHECK_FALSE(dsn_wanted(0, DsnEvent::success));
	CHECK_FALSE(dsn_wanted(notify_never, DsnEvent::failure));
	CHECK_FALSE(dsn_wanted(notify_never, DsnEvent::delay));
	CHECK_FALSE(dsn_wanted(notify_never, DsnEvent::success));
	CHECK(dsn_wanted(notify_success, DsnEvent::success));
	CHECK_FALSE(dsn_wanted(notify_success, DsnEvent::failure));
	CHECK_FALSE(dsn_wanted(notify_success, DsnEvent::delay));
	CHECK(dsn_wanted(notify_failure, DsnEvent::failure));
	CHECK_FALSE(dsn_wanted(notify_failure, DsnEvent::delay));
	CHECK(dsn_wanted(notify_delay | notify_failure, DsnEvent::delay));
}

TEST_CASE("queue: a next hop's LIMITS (RFC 9422 4)") {
	ServerLimits l = parse_limits("RCPTMAX=20 MAILMAX=5");
	CHECK(l.rcpt_max == 20);
	CHECK(l.mail_max == 5);
	l = parse_limits("mailmax=7 FOO=bar RCPTDOMAINMAX=3");
	CHECK(l.rcpt_max == 0);
	CHECK(l.mail_max == 7);
	CHECK(parse_limits("RCPTMAX=x20").rcpt_max == 0);
	CHECK(parse_limits("RCPTMAX=").rcpt_max == 0);
	CHECK(parse_limits("RCPTMAX=99999999999999").rcpt_max == 0);
	CHECK(parse_limits("").rcpt_max == 0);
}

TEST_CASE("queue: TLS-Required: No in a header section (RFC 8689 3)") {
	CHECK(has_tls_required_no("Subject: x\r\nTLS-Required: No\r\n\r\n"));
	CHECK(has_tls_required_no("tls-required:   no  \r\nSubject: x\r\n"));
	CHECK(has_tls_required_no("TLS-Required:\r\n No\r\n\r\n"));
	CHECK_FALSE(has_tls_required_no("TLS-Required: Yes\r\n"));
	CHECK_FALSE(has_tls_required_no("Subject: TLS-Required: No\r\n"));
	CHECK_FALSE(has_tls_required_no("Subject: x\r\n\r\nTLS-Required: No\r\n"));  // in the body
	CHECK_FALSE(has_tls_required_no(""));
}
