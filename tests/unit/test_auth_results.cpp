// Authentication-Results (RFC 8601): the generic builder's format and
// folding, and the entries the model writes per check, as exact bytes.
#include <doctest/doctest.h>

#include "mailauth/auth_methods.h"
#include "message/auth_results.h"

using namespace tern;
using namespace tern::mailauth;
using tern::message::AuthMethod;
using tern::message::AuthProp;
using tern::message::build_authentication_results;

namespace {

dkim::Result passing_signature() {
	dkim::Result r;
	r.status = dkim::Status::pass;
	dkim::Signature sig;
	sig.domain = "example.org";
	sig.selector = "sel2023";
	sig.sign_algorithm = "rsa";
	sig.hash_algorithm = "sha256";
	sig.signature_base64 = "dGhpcyBpcyBhIHNpZ25hdHVyZQ==";
	r.signature = sig;
	dkim::Key key;
	key.key_type = "rsa";
	key.rsa_bits = 2048;
	r.key = key;
	return r;
}

}  // namespace

TEST_CASE("authentication-results: submission") {
	std::string h = build_authentication_results("mx.example", "", {submission_auth_method("alice@example.org")});
	CHECK(h == "Authentication-Results: mx.example; auth=pass smtp.mailfrom=alice@example.org\r\n");
}

TEST_CASE("authentication-results: typical delivery, folded at 78 columns") {
	DmarcResult dmarc;
	dmarc.status = DmarcStatus::pass;
	dmarc.domain = "example.org";
	std::vector<AuthMethod> methods;
	methods.push_back(iprev_auth_method(IprevStatus::pass, *IpAddr::parse("1.2.3.4")));
	for (AuthMethod& m : dkim_auth_methods({passing_signature()})) methods.push_back(std::move(m));
	methods.push_back(spf_auth_method(SpfStatus::pass, SpfReceived::Identity::mailfrom, "example.org"));
	methods.push_back(dmarc_auth_method(dmarc));

	std::string h = build_authentication_results("mx.example", "", methods);
	CHECK(h ==
	      "Authentication-Results: mx.example; iprev=pass policy.iprev=1.2.3.4; dkim=pass\r\n"
	      "\t(2048 bit rsa) header.d=example.org header.s=sel2023 header.a=rsa-sha256\r\n"
	      "\theader.b=dGhpcyBpcyBh; spf=pass smtp.mailfrom=example.org; dmarc=pass\r\n"
	      "\theader.from=example.org\r\n");
}

TEST_CASE("authentication-results: the authserv-id stays on the field name's line, however long") {
	const std::string host = "a-rather-long-host-name-for-a-mail-server.subdomain.example";  // 59 characters
	std::string h = build_authentication_results(host, "",
	                                             {iprev_auth_method(IprevStatus::pass, *IpAddr::parse("1.2.3.4"))});
	CHECK(h == "Authentication-Results: " + host + ";\r\n\tiprev=pass policy.iprev=1.2.3.4\r\n");
}

TEST_CASE("authentication-results: no methods, comments, quoting") {
	CHECK(build_authentication_results("mx.example", "", {}) == "Authentication-Results: mx.example; none\r\n");
	CHECK(build_authentication_results("xn--bcher-kva.example", "bücher.example", {}) ==
	      "Authentication-Results: (bücher.example) xn--bcher-kva.example; none\r\n");

	AuthMethod m;
	m.method = "dkim";
	m.result = "fail";
	m.comment = "1024 bit rsa";
	m.reason = "dkim: body hash does not match";
	m.props.push_back(AuthProp{"header", "d", "example.org", true, "ascii form"});
	m.props.push_back(AuthProp{"header", "b", "a\"b\\c", false, ""});
	CHECK(build_authentication_results("mx", "", {m}) ==
	      "Authentication-Results: mx; dkim=fail (1024 bit rsa)\r\n"
	      "\treason=\"dkim: body hash does not match\" header.d=example.org (ascii form)\r\n"
	      "\theader.b=\"a\\\"b\\\\c\"\r\n");

	// A method comment without reason or property is left out.
	AuthMethod bare;
	bare.method = "spf";
	bare.result = "none";
	bare.comment = "ignored";
	CHECK(build_authentication_results("mx", "", {bare}) == "Authentication-Results: mx; spf=none\r\n");

	CHECK(message::auth_results_value("") == "\"\"");
	CHECK(message::auth_results_value("token") == "token");
	CHECK(message::auth_results_value("two words") == "\"two words\"");
	CHECK(message::auth_results_value("bücher") == "bücher");
}

TEST_CASE("authentication-results: entries per check") {
	// No signatures at all.
	std::string h = build_authentication_results("mx.example", "", dkim_auth_methods({}));
	CHECK(h == "Authentication-Results: mx.example; dkim=none reason=\"no dkim signatures\"\r\n");
	// A header section that could not be read: why, as the model says it.
	h = build_authentication_results(
	    "mx.example", "",
	    dkim_auth_methods({}, "dkim: mail message header is malformed: malformed message, header without colon"));
	CHECK(h ==
	      "Authentication-Results: mx.example; dkim=none\r\n"
	      "\treason=\"dkim: mail message header is malformed: malformed message, header without colon\"\r\n");

	// A failing signature with i= and the error as reason.
	dkim::Result failing = passing_signature();
	failing.status = dkim::Status::fail;
	failing.error = "dkim: signature verification failed";
	failing.signature->identity = "@mail.example.org";
	auto methods = dkim_auth_methods({failing});
	REQUIRE(methods.size() == 1);
	CHECK(methods[0].result == "fail");
	CHECK(methods[0].comment == "2048 bit rsa");
	CHECK(methods[0].reason == "dkim: signature verification failed");
	REQUIRE(methods[0].props.size() == 5);
	CHECK(methods[0].props[3].value == "dGhpcyBpcyBh");
	CHECK(methods[0].props[4].property == "i");
	CHECK(methods[0].props[4].value == "@mail.example.org");
	// i= with its domain in lower case, the local part as written.
	failing.signature->identity = "\"a b\"@Mail.EXAMPLE.org";
	CHECK(dkim_auth_methods({failing})[0].props[4].value == "\"a b\"@mail.example.org");

	// Refused for its tags or by policy before the key lookup: result and
	// reason, no properties (the model has no signature there).
	dkim::Result refused = passing_signature();
	refused.status = dkim::Status::policy;
	refused.error = "dkim: signature rejected by policy: required header fields missing from signature: subject";
	refused.refused_before_lookup = true;
	methods = dkim_auth_methods({refused});
	CHECK(methods[0].result == "policy");
	CHECK(methods[0].props.empty());
	CHECK(methods[0].comment.empty());

	// A signature that did not parse: result and reason only.
	dkim::Result unparsed;
	unparsed.status = dkim::Status::permerror;
	unparsed.error = "dkim: missing required tag: \"bh\"";
	h = build_authentication_results("mx", "", dkim_auth_methods({unparsed}));
	CHECK(h ==
	      "Authentication-Results: mx; dkim=permerror\r\n"
	      "\treason=\"dkim: missing required tag: \\\"bh\\\"\"\r\n");

	// SPF for the HELO name; none without an identity.
	h = build_authentication_results(
	    "mx", "", {spf_auth_method(SpfStatus::softfail, SpfReceived::Identity::helo, "client.example")});
	CHECK(h == "Authentication-Results: mx; spf=softfail smtp.helo=client.example\r\n");
	h = build_authentication_results("mx", "", {spf_auth_method(SpfStatus::none, SpfReceived::Identity::none, "")});
	CHECK(h == "Authentication-Results: mx; spf=none\r\n");

	// iprev with IPv6, and DMARC for an unparsable From.
	h = build_authentication_results("mx", "",
	                                 {iprev_auth_method(IprevStatus::temperror, *IpAddr::parse("2001:db8::1")),
	                                  dmarc_auth_method(DmarcResult{})});
	CHECK(h ==
	      "Authentication-Results: mx; iprev=temperror policy.iprev=2001:db8::1;\r\n"
	      "\tdmarc=none\r\n");
}
