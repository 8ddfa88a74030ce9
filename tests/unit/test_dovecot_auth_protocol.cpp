// The Dovecot auth-client protocol state machine (src/sasl/dovecot_auth_protocol.h)
// against scripted server lines: the handshake, each reply, and lines that
// break the protocol.
#include <doctest/doctest.h>

#include "sasl/dovecot_auth_protocol.h"
#include "util/base64.h"

using namespace tern::sasl::dovecot;
using Kind = Event::Kind;

namespace {

// A protocol that has read a Dovecot 2.3 handshake offering `mechs` lines.
ClientProtocol after_handshake(const std::vector<std::string>& mech_lines) {
	ClientProtocol p(1);
	REQUIRE(p.feed("VERSION\t1\t2").kind == Kind::none);
	for (const auto& m : mech_lines) REQUIRE(p.feed(m).kind == Kind::none);
	REQUIRE(p.feed("SPID\t4242").kind == Kind::none);
	REQUIRE(p.feed("CUID\t7").kind == Kind::none);
	REQUIRE(p.feed("COOKIE\t0123456789abcdef").kind == Kind::none);
	REQUIRE(p.feed("DONE").kind == Kind::handshake_done);
	return p;
}

const std::vector<std::string> debian_mechs = {"MECH\tPLAIN\tplaintext", "MECH\tLOGIN\tplaintext",
                                               "MECH\tSCRAM-SHA-256\tmutual-auth", "MECH\tCRAM-MD5\tdictionary\tactive",
                                               "MECH\tEXTERNAL\tprivate"};

}  // namespace

TEST_CASE("dovecot auth: hello, handshake and the mechanisms tern relays") {
	CHECK(ClientProtocol::hello(123) == "VERSION\t1\t2\nCPID\t123\n");
	ClientProtocol p = after_handshake(debian_mechs);
	CHECK(p.handshake_done());
	CHECK(p.mechanisms() == std::vector<std::string>{"PLAIN", "LOGIN", "SCRAM-SHA-256", "CRAM-MD5"});
	CHECK(p.offers("PLAIN"));
	CHECK_FALSE(p.offers("EXTERNAL"));  // private: never offered to clients
	CHECK(advertised_for(p.mechanisms()) == "SCRAM-SHA-256 PLAIN LOGIN");
	CHECK(advertised_for({"CRAM-MD5", "GSSAPI"}).empty());
	CHECK(is_relayed("SCRAM-SHA-1"));
	CHECK_FALSE(is_relayed("CRAM-MD5"));
	// Lower-case names from the server are compared upper-cased.
	ClientProtocol lower = after_handshake({"MECH\tplain"});
	CHECK(lower.offers("PLAIN"));
}

TEST_CASE("dovecot auth: PLAIN with an initial response, OK with the user name") {
	ClientProtocol p = after_handshake(debian_mechs);
	CHECK(p.cont("x").empty());  // nothing asked yet
	AuthRequest r;
	r.mechanism = "PLAIN";
	r.initial_response = std::string("\0alice@example.org\0secret", 25);
	r.secured = true;
	r.remote_ip = "192.0.2.1";
	r.remote_port = 40000;
	r.local_ip = "192.0.2.2";
	r.local_port = 587;
	std::string line = p.auth(r);
	CHECK(line ==
	      "AUTH\t1\tPLAIN\tservice=smtp\tsecured\tno-penalty\tlip=192.0.2.2\trip=192.0.2.1\tlport=587\trport=40000"
	      "\tresp=" +
	          tern::base64_encode(*r.initial_response) + "\n");
	CHECK(p.auth(r).empty());  // one request per protocol object
	Event e = p.feed("OK\t1\tuser=alice@example.org\toriginal_user=Alice@example.org");
	CHECK(e.kind == Kind::success);
	CHECK(e.user == "alice@example.org");
	CHECK_FALSE(e.has_data);
	// Nothing may follow the final reply.
	CHECK(p.feed("OK\t1\tuser=x").kind == Kind::protocol_error);
}

TEST_CASE("dovecot auth: an empty initial response and none at all") {
	ClientProtocol p = after_handshake(debian_mechs);
	AuthRequest r;
	r.mechanism = "PLAIN";
	r.initial_response = std::string();
	CHECK(p.auth(r) == "AUTH\t1\tPLAIN\tservice=smtp\tno-penalty\tresp=\n");
	ClientProtocol q = after_handshake(debian_mechs);
	r.initial_response.reset();
	CHECK(q.auth(r) == "AUTH\t1\tPLAIN\tservice=smtp\tno-penalty\n");
}

TEST_CASE("dovecot auth: SCRAM's challenges go both ways as CONT lines") {
	ClientProtocol p = after_handshake(debian_mechs);
	AuthRequest r;
	r.mechanism = "SCRAM-SHA-256";
	r.initial_response = "n,,n=alice,r=abc";
	REQUIRE_FALSE(p.auth(r).empty());
	Event first = p.feed("CONT\t1\t" + tern::base64_encode("r=abcdef,s=c2FsdA==,i=4096"));
	CHECK(first.kind == Kind::challenge);
	CHECK(first.data == "r=abcdef,s=c2FsdA==,i=4096");
	// The server may not speak twice before the client answers.
	ClientProtocol dup = after_handshake(debian_mechs);
	REQUIRE_FALSE(dup.auth(r).empty());
	REQUIRE(dup.feed("CONT\t1\tYQ==").kind == Kind::challenge);
	CHECK(dup.feed("CONT\t1\tYQ==").kind == Kind::protocol_error);

	CHECK(p.cont("c=biws,r=abcdef,p=proof") == "CONT\t1\t" + tern::base64_encode("c=biws,r=abcdef,p=proof") + "\n");
	CHECK(p.cont("again").empty());  // no challenge pending
	// Dovecot sends SCRAM's server-final message as one more challenge,
	// then OK once the client acknowledged it with an empty answer.
	Event last = p.feed("CONT\t1\t" + tern::base64_encode("v=signature"));
	CHECK(last.kind == Kind::challenge);
	CHECK(last.data == "v=signature");
	CHECK(p.cont("") == "CONT\t1\t\n");
	CHECK(p.feed("OK\t1\tuser=alice").kind == Kind::success);
}

TEST_CASE("dovecot auth: OK may carry final data") {
	ClientProtocol p = after_handshake(debian_mechs);
	AuthRequest r;
	r.mechanism = "SCRAM-SHA-256";
	r.initial_response = "n,,n=alice,r=abc";
	REQUIRE_FALSE(p.auth(r).empty());
	Event e = p.feed("OK\t1\tuser=alice\tresp=" + tern::base64_encode("v=xyz"));
	CHECK(e.kind == Kind::success);
	CHECK(e.has_data);
	CHECK(e.data == "v=xyz");
}

TEST_CASE("dovecot auth: FAIL with a reason, and the temporary kind") {
	AuthRequest r;
	r.mechanism = "LOGIN";
	{
		ClientProtocol p = after_handshake(debian_mechs);
		REQUIRE_FALSE(p.auth(r).empty());
		Event e = p.feed("FAIL\t1\tuser=bob\treason=Password\001tmismatch");
		CHECK(e.kind == Kind::failure);
		CHECK(e.user == "bob");
		CHECK(e.reason == "Password\tmismatch");  // tab-escaping undone
	}
	{
		ClientProtocol p = after_handshake(debian_mechs);
		REQUIRE_FALSE(p.auth(r).empty());
		Event e = p.feed("FAIL\t1");
		CHECK(e.kind == Kind::failure);
		CHECK(e.reason.empty());
	}
	{
		ClientProtocol p = after_handshake(debian_mechs);
		REQUIRE_FALSE(p.auth(r).empty());
		Event e = p.feed("FAIL\t1\ttemp\treason=Internal error occurred.");
		CHECK(e.kind == Kind::temporary_failure);
		CHECK(e.reason == "Internal error occurred.");
	}
	{
		ClientProtocol p = after_handshake(debian_mechs);
		REQUIRE_FALSE(p.auth(r).empty());
		CHECK(p.feed("FAIL\t1\tcode=temp_fail").kind == Kind::temporary_failure);
	}
}

TEST_CASE("dovecot auth: malformed and unexpected lines are protocol errors") {
	SUBCASE("no VERSION first") {
		ClientProtocol p;
		CHECK(p.feed("MECH\tPLAIN").kind == Kind::protocol_error);
		CHECK(p.feed("VERSION\t1\t2").kind == Kind::protocol_error);  // stays broken
	}
	SUBCASE("another major version") {
		ClientProtocol p;
		CHECK(p.feed("VERSION\t2\t0").kind == Kind::protocol_error);
	}
	SUBCASE("truncated VERSION") {
		ClientProtocol p;
		CHECK(p.feed("VERSION").kind == Kind::protocol_error);
	}
	SUBCASE("MECH without a name") {
		ClientProtocol p;
		p.feed("VERSION\t1\t2");
		CHECK(p.feed("MECH").kind == Kind::protocol_error);
	}
	SUBCASE("a reply before any request") {
		ClientProtocol p = after_handshake(debian_mechs);
		CHECK(p.feed("OK\t1\tuser=x").kind == Kind::protocol_error);
		AuthRequest r;
		r.mechanism = "PLAIN";
		CHECK(p.auth(r).empty());
	}
	SUBCASE("replies for another id, unknown replies, bad base64") {
		AuthRequest r;
		r.mechanism = "PLAIN";
		ClientProtocol a = after_handshake(debian_mechs);
		REQUIRE_FALSE(a.auth(r).empty());
		CHECK(a.feed("OK\t2\tuser=x").kind == Kind::protocol_error);
		ClientProtocol b = after_handshake(debian_mechs);
		REQUIRE_FALSE(b.auth(r).empty());
		CHECK(b.feed("NOTFOUND\t1").kind == Kind::protocol_error);
		ClientProtocol c = after_handshake(debian_mechs);
		REQUIRE_FALSE(c.auth(r).empty());
		CHECK(c.feed("CONT\t1\t!!!").kind == Kind::protocol_error);
		ClientProtocol d = after_handshake(debian_mechs);
		REQUIRE_FALSE(d.auth(r).empty());
		CHECK(d.feed("OK").kind == Kind::protocol_error);
		ClientProtocol e = after_handshake(debian_mechs);
		REQUIRE_FALSE(e.auth(r).empty());
		CHECK(e.feed("").kind == Kind::protocol_error);
	}
	SUBCASE("a CR before the LF is tolerated") {
		ClientProtocol p;
		CHECK(p.feed("VERSION\t1\t2\r").kind == Kind::none);
		CHECK(p.feed("DONE\r").kind == Kind::handshake_done);
	}
}

TEST_CASE("dovecot auth: tab-escaping round-trips every special byte") {
	std::string raw("a\tb\nc\rd\0e\001f", 11);
	std::string escaped = escape(raw);
	CHECK(escaped.find('\t') == std::string::npos);
	CHECK(escaped.find('\n') == std::string::npos);
	CHECK(unescape(escaped) == raw);
	CHECK(unescape("x\001ly") == "x\ny");
	CHECK(unescape("x\001") == "x\001");  // a trailing escape byte stays
}

TEST_CASE("dovecot auth: the login name for the failed-login log line") {
	CHECK(login_name_in("PLAIN", 0, std::string("\0alice@example.org\0secret", 25)) == "alice@example.org");
	CHECK(login_name_in("PLAIN", 0, "no nul here").empty());
	CHECK(login_name_in("LOGIN", 0, "bob") == "bob");
	CHECK(login_name_in("LOGIN", 1, "the password").empty());
	CHECK(login_name_in("SCRAM-SHA-256", 0, "n,,n=we=2Cird=3Dname,r=abc") == "we,ird=name");
	CHECK(login_name_in("SCRAM-SHA-1", 0, "y,a=admin,n=carol,r=x") == "carol");
	CHECK(login_name_in("SCRAM-SHA-1", 0, "n,,r=x").empty());
	CHECK(login_name_in("SCRAM-SHA-1", 1, "c=biws,r=x,p=y").empty());
}
