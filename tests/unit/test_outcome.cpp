// Errors as values (smtp/result.h), the one error-reply builder
// (smtp/reply.h), command outcomes (server/outcome.h) and the localserve
// policy the session consults (server/localserve.h).
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "config/config.h"
#include "server/localserve.h"
#include "server/outcome.h"
#include "smtp/reply.h"
#include "smtp/result.h"

using namespace tern;

TEST_CASE("error_reply: code, enhanced code and text; with the id and open unless told") {
	smtp::SmtpError e = smtp::error_reply(503, smtp::se::proto_bad_cmd_or_seq1, "missing MAIL FROM");
	CHECK(e.code == 503);
	CHECK(smtp::enhanced_code(e.code, e.secode) == "5.5.1");
	CHECK(e.text == "missing MAIL FROM");
	CHECK(e.with_id);
	CHECK_FALSE(e.close);
	smtp::SmtpError bye =
	    smtp::error_reply(550, smtp::se::addr_other0, "too many failures").without_id().then_close();
	CHECK_FALSE(bye.with_id);
	CHECK(bye.close);
	CHECK(bye.text == "too many failures");
}

TEST_CASE("Result: a value or its refusal, never both") {
	smtp::Result<std::string> ok = std::string("user");
	REQUIRE(ok.ok());
	CHECK(static_cast<bool>(ok));
	CHECK(*ok == "user");
	CHECK(ok->size() == 4);

	smtp::Result<std::string> refused = smtp::error_reply(501, smtp::se::proto_syntax2, "bad syntax: x");
	CHECK_FALSE(refused.ok());
	CHECK(refused.error().code == 501);

	// Move-only values pass through (the DATA temp file state).
	smtp::Result<std::unique_ptr<int>> owned = std::make_unique<int>(7);
	REQUIRE(owned);
	std::unique_ptr<int> taken = std::move(*owned);
	CHECK(*taken == 7);

	smtp::Status fine;
	CHECK(fine.ok());
	smtp::Status no = smtp::error_reply(530, smtp::se::pol_other0, "authentication required");
	CHECK_FALSE(no);
	CHECK(no.error().text == "authentication required");
}

TEST_CASE("Outcome: a reply and the state after it, suspended, or refused with one reply") {
	// SessionState is only declared here (its values live in
	// server/session.h): an Outcome hands back the state it was given.
	const auto next = server::SessionState{3};

	server::Outcome ok = server::Outcome::reply(250, smtp::se::addr_other0, "looking good");
	CHECK(ok.kind() == server::Outcome::Kind::replied);
	CHECK_FALSE(ok.refused());
	REQUIRE(ok.reply() != nullptr);
	CHECK(ok.reply()->code == 250);
	CHECK(smtp::enhanced_code(ok.reply()->code, ok.reply()->secode) == "2.1.0");
	CHECK_FALSE(ok.reply()->with_id);  // only refusals carry the received-id
	CHECK_FALSE(ok.reply()->close);
	CHECK_FALSE(ok.next_state());

	server::Outcome then = server::Outcome::reply(221, smtp::se::other0, "okay thanks bye").then(next);
	REQUIRE(then.next_state());
	CHECK(*then.next_state() == next);

	// EHLO: one outcome, one line per element, formatted as a multi-line reply.
	server::Outcome lines = server::Outcome::reply_lines(250, "", {"mx.example", "PIPELINING", "SMTPUTF8"});
	REQUIRE(lines.reply() != nullptr);
	CHECK(smtp::format_reply(250, lines.reply()->secode, lines.reply()->text) ==
	      "250-mx.example\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n");

	// A SASL challenge is one 334 line, never wrapped, and leads to the exchange.
	server::Outcome challenge = server::Outcome::sasl_challenge(std::string(600, 'A')).then(next);
	CHECK(challenge.verbatim());
	CHECK(challenge.reply()->code == 334);
	CHECK(challenge.reply()->text.size() == 600);
	CHECK_FALSE(ok.verbatim());

	CHECK(server::Outcome::suspended().kind() == server::Outcome::Kind::suspended);
	CHECK(server::Outcome::suspended().reply() == nullptr);
	server::Outcome entered = server::Outcome::enter(next);
	CHECK(entered.reply() == nullptr);
	CHECK(entered.next_state() == next);
	CHECK(server::Outcome::delegated().reply() == nullptr);

	server::Outcome o = smtp::error_reply(252, smtp::se::pol_other0, "no verify but will try delivery");
	REQUIRE(o.refused());
	CHECK(o.refusal().code == 252);
	CHECK(o.refusal().with_id);
	CHECK(o.reply() == &o.refusal());
	server::Outcome closing = smtp::error_reply(550, smtp::se::addr_other0, "too many failures").then_close();
	CHECK(closing.reply()->close);
}

TEST_CASE("localserve policy: what the session asks of the mode") {
	config::Config normal;
	normal.localserve = false;
	server::LocalservePolicy off(normal);
	CHECK(off.checks_over_dns());
	CHECK_FALSE(off.any_sender());
	CHECK(off.sole_account() == nullptr);
	// Outside localserve, special localparts are ordinary addresses.
	CHECK(off.command_failure("mailfrom", "mailfrompermerror").code == 0);

	auto cfg = config::Config::localserve_config("/tmp/tern-ls/");
	REQUIRE(cfg);
	server::LocalservePolicy on(*cfg);
	CHECK_FALSE(on.checks_over_dns());
	CHECK(on.any_sender());
	REQUIRE(on.sole_account() != nullptr);
	CHECK(on.sole_account() == &cfg->accounts.begin()->second);
	CHECK(on.command_failure("mailfrom", "mailfrompermerror").code == 550);
	CHECK(on.command_failure("rcptto", "rcptto451").code == 451);
	CHECK(on.command_failure("rcptto", "rcpttotimeout").timeout);
	// Only the command's own prefix counts: a RCPT-style localpart at MAIL does nothing.
	CHECK(on.command_failure("mailfrom", "rcpttopermerror").code == 0);
	CHECK(on.command_failure("rcptto", "rcpttonothing").code == 0);
}
