// SASL client steps towards a smarthost (SCRAM-SHA-256, PLAIN, LOGIN), and
// the login name as sent that the server-side mechanisms report for the
// failed-login log line.
#include <doctest/doctest.h>

#include <string>

#include "sasl/client.h"
#include "sasl/mechanism.h"
#include "sasl/secrets.h"

using namespace std::string_literals;
using tern::sasl::choose_client_mechanism;
using tern::sasl::make_client_mechanism;
using tern::sasl::make_mechanism;
using tern::sasl::Step;
using tern::sasl::StoredSecrets;

namespace {

// RFC 7677 section 3.
const std::string rfc_client_nonce = "rOprNGfwEbeRWgbNEkqO";
const std::string rfc_server_first =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const std::string rfc_client_final =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const std::string rfc_server_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

std::unique_ptr<tern::sasl::ClientMechanism> rfc_scram() {
	return make_client_mechanism("SCRAM-SHA-256", "user", "pencil", [] { return rfc_client_nonce; });
}

}  // namespace

TEST_CASE("sasl client: mechanism preference SCRAM-SHA-256, PLAIN, LOGIN") {
	CHECK(choose_client_mechanism({"LOGIN", "PLAIN", "SCRAM-SHA-256", "CRAM-MD5"}) == "SCRAM-SHA-256");
	CHECK(choose_client_mechanism({"login", "plain", "SCRAM-SHA-1"}) == "PLAIN");
	CHECK(choose_client_mechanism({"CRAM-MD5", "Login"}) == "LOGIN");
	CHECK(choose_client_mechanism({"CRAM-MD5", "XOAUTH2"}) == "");
	CHECK(choose_client_mechanism({}) == "");
	CHECK(make_client_mechanism("CRAM-MD5", "u", "p") == nullptr);
	CHECK(make_client_mechanism("scram-sha-256", "u", "p")->name() == "SCRAM-SHA-256");
}

TEST_CASE("sasl client SCRAM-SHA-256: RFC 7677 section 3 example") {
	auto scram = rfc_scram();
	CHECK(scram->initial_response() == "n,,n=user,r=" + rfc_client_nonce);
	auto step = scram->respond(rfc_server_first);
	REQUIRE_MESSAGE(step.ok, step.error);
	CHECK(step.response == rfc_client_final);
	CHECK(scram->finished() != "");  // the server has not proven itself yet
	step = scram->respond(rfc_server_final);
	REQUIRE_MESSAGE(step.ok, step.error);
	CHECK(step.response == "");
	CHECK(scram->finished() == "");
}

TEST_CASE("sasl client SCRAM-SHA-256: a wrong or missing server signature is an error") {
	auto scram = rfc_scram();
	scram->initial_response();
	REQUIRE(scram->respond(rfc_server_first).ok);
	auto step = scram->respond("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
	CHECK_FALSE(step.ok);
	CHECK(step.error == "wrong SCRAM server signature: the server does not know the password");
	CHECK(scram->finished() != "");

	// 235 right after the client-final, without v=: not trusted.
	scram = rfc_scram();
	scram->initial_response();
	REQUIRE(scram->respond(rfc_server_first).ok);
	CHECK(scram->finished() == "server accepted SCRAM-SHA-256 without proving that it knows the password");

	// 235 without any exchange.
	scram = rfc_scram();
	scram->initial_response();
	CHECK(scram->finished() != "");
}

TEST_CASE("sasl client SCRAM-SHA-256: bad server messages") {
	auto after_first = [](const std::string& server_first) {
		auto scram = rfc_scram();
		scram->initial_response();
		return scram->respond(server_first);
	};
	CHECK(after_first("r=someoneelse123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096").error ==
	      "SCRAM server nonce does not extend the client nonce");
	CHECK(after_first("r=" + rfc_client_nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096").error ==
	      "SCRAM server nonce does not extend the client nonce");
	CHECK(after_first("m=ext,r=" + rfc_client_nonce + "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096").error ==
	      "SCRAM server-first has a mandatory extension");
	CHECK(after_first("r=" + rfc_client_nonce + "x,s=!!!,i=4096").error == "malformed SCRAM salt");
	CHECK(after_first("r=" + rfc_client_nonce + "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1").error ==
	      "malformed SCRAM iteration count");
	CHECK(after_first("r=" + rfc_client_nonce + "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0").error ==
	      "SCRAM iteration count 0 out of range (1..65536)");
	CHECK(after_first("r=" + rfc_client_nonce + "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000000").error ==
	      "SCRAM iteration count 10000000 out of range (1..65536)");
	CHECK(after_first("s=W22ZaJ0SNY7soEsUEjb6gQ==,r=" + rfc_client_nonce + "x,i=4096").error ==
	      "malformed SCRAM server-first message");
	CHECK(after_first("").error == "malformed SCRAM server-first message");
	// Optional extensions after i= are ignored (RFC 5802 7).
	CHECK(after_first(rfc_server_first + ",x=whatever").ok);

	auto scram = rfc_scram();
	scram->initial_response();
	REQUIRE(scram->respond(rfc_server_first).ok);
	CHECK(scram->respond("e=invalid-proof").error == "SCRAM server error: invalid-proof");
	CHECK_FALSE(scram->respond(rfc_server_final).ok);  // no second chance after an error
}

TEST_CASE("sasl client SCRAM-SHA-256: against tern's own server mechanism") {
	const std::string user = "a,b=c@example.org";
	const std::string password = "p@ss, word=";
	for (std::string given : {password, "not the password"s}) {
		CAPTURE(given);
		auto client = make_client_mechanism("SCRAM-SHA-256", user, given);
		auto server = make_mechanism("SCRAM-SHA-256", "mail.example");
		Step s = server->start(client->initial_response());
		REQUIRE(s.kind == Step::Kind::lookup);
		CHECK(s.username == user);
		CHECK(server->username_sent() == user);
		s = server->provide_secrets(StoredSecrets::derive(password));
		REQUIRE(s.kind == Step::Kind::challenge);
		auto c = client->respond(s.challenge);
		REQUIRE(c.ok);
		s = server->next(c.response);
		REQUIRE(s.kind == Step::Kind::challenge);
		c = client->respond(s.challenge);
		if (given == password) {
			REQUIRE_MESSAGE(c.ok, c.error);
			CHECK(server->next(c.response).kind == Step::Kind::success);
			CHECK(client->finished() == "");
		} else {
			CHECK(c.error == "SCRAM server error: invalid-proof");
			CHECK(client->finished() != "");
		}
	}
}

TEST_CASE("sasl client PLAIN and LOGIN") {
	auto plain = make_client_mechanism("PLAIN", "me@example.org", "secret");
	CHECK(plain->initial_response() == "\0me@example.org\0secret"s);
	CHECK_FALSE(plain->respond("").ok);
	CHECK(plain->finished() == "");

	auto login = make_client_mechanism("LOGIN", "me@example.org", "secret");
	CHECK(login->initial_response() == std::nullopt);
	CHECK(login->finished() == "LOGIN exchange ended early");
	auto step = login->respond("Username:");
	CHECK(step.ok);
	CHECK(step.response == "me@example.org");
	step = login->respond("whatever the server asks second");
	CHECK(step.ok);
	CHECK(step.response == "secret");
	CHECK(login->finished() == "");
	CHECK(login->respond("Password:").error == "unexpected third LOGIN challenge");
}

TEST_CASE("sasl server: the login name as sent, for the failed-login log line") {
	auto plain = make_mechanism("PLAIN", "mail.example");
	CHECK(plain->username_sent() == "");
	plain->start("\0someone@example.org\0wrong"s);
	CHECK(plain->username_sent() == "someone@example.org");

	auto login = make_mechanism("LOGIN", "mail.example");
	login->start(std::nullopt);
	login->next("user name with spaces");
	CHECK(login->username_sent() == "user name with spaces");
	login->next("password");
	CHECK(login->username_sent() == "user name with spaces");

	auto cram = make_mechanism("CRAM-MD5", "mail.example");
	cram->start(std::nullopt);
	cram->next("bob@example.org 0123456789abcdef0123456789abcdef");
	CHECK(cram->username_sent() == "bob@example.org");

	auto scram = make_mechanism("SCRAM-SHA-1", "mail.example");
	scram->start("n,,n=eve=2C@example.org,r=abcdefghijkl"s);
	CHECK(scram->username_sent() == "eve,@example.org");
	// A malformed message before any name: nothing to report.
	auto broken = make_mechanism("SCRAM-SHA-256", "mail.example");
	broken->start("x"s);
	CHECK(broken->username_sent() == "");
}
