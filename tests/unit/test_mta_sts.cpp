// MTA-STS (RFC 8461): the _mta-sts TXT record, the policy file, MX pattern
// matching, and the HTTP response that carries the policy.
#include <doctest/doctest.h>

#include "mailauth/mta_sts.h"

using namespace tern::mailauth::mta_sts;

namespace {

const char* const rfc_policy =
    "version: STSv1\n"
    "mode: enforce\n"
    "mx: mail.example.com\n"
    "mx: *.example.net\n"
    "mx: backupmx.example.com\n"
    "max_age: 604800\n";

// The parse error of a policy that must not parse.
std::string policy_error(std::string_view body) {
	std::string error;
	auto p = parse_policy(body, &error);
	CHECK_FALSE(p);
	CHECK(error != "");
	return error;
}

// The error of an HTTP response that must not give a body.
std::string http_error(std::string_view raw) {
	std::string error;
	auto body = policy_body_from_http(raw, &error);
	CHECK_FALSE(body);
	CHECK(error != "");
	return error;
}

Policy policy_with(std::vector<std::string> mx) {
	Policy p;
	p.mode = Mode::enforce;
	p.mx = std::move(mx);
	p.max_age = 86400;
	return p;
}

}  // namespace

// ---------------------------------------------------------------- TXT record

TEST_CASE("MTA-STS: TXT record of RFC 8461 3.1") {
	auto r = pick_record({"v=STSv1; id=20160831085700Z;"});
	REQUIRE(r);
	CHECK(r->id == "20160831085700Z");

	r = pick_record({"v=STSv1;id=abc"});
	REQUIRE(r);
	CHECK(r->id == "abc");

	// Optional WSP around '=' and ';'; unknown extension fields allowed.
	r = pick_record({"v = STSv1 ;\tid = X1 ; ext_1.a-b=some/value ;"});
	REQUIRE(r);
	CHECK(r->id == "X1");
	r = pick_record({"v=STSv1; ext=1; id=later"});
	REQUIRE(r);
	CHECK(r->id == "later");

	// The id may be 32 characters long.
	const std::string id32(32, 'a');
	r = pick_record({"v=STSv1; id=" + id32});
	REQUIRE(r);
	CHECK(r->id == id32);

	// When id= repeats, the first counts.
	r = pick_record({"v=STSv1; id=first; id=second"});
	REQUIRE(r);
	CHECK(r->id == "first");
}

TEST_CASE("MTA-STS: TXT records that are not STS records are discarded") {
	auto r = pick_record({"v=spf1 -all", "v=STSv1; id=abc123;", "google-site-verification=xyz"});
	REQUIRE(r);
	CHECK(r->id == "abc123");

	// Records not beginning with "v=STSv1;" do not count, even when they
	// would be invalid STS records.
	r = pick_record(
	    {"v=STSv2; id=zzz", "v=STSv1; id=ok", "v=stsv1; id=lower", " v=STSv1; id=lead", "id=x; v=STSv1;"});
	REQUIRE(r);
	CHECK(r->id == "ok");

	CHECK_FALSE(pick_record({}));
	CHECK_FALSE(pick_record({"v=spf1 -all"}));
	// "v=STSv1" without ';' does not begin with "v=STSv1;".
	CHECK_FALSE(pick_record({"v=STSv1"}));
	CHECK_FALSE(pick_record({"v=STSv1 id=abc"}));
}

TEST_CASE("MTA-STS: two STS records give no record") {
	CHECK_FALSE(pick_record({"v=STSv1; id=one;", "v=STSv1; id=two;"}));
	// Even when they agree, and even when one of them is invalid.
	CHECK_FALSE(pick_record({"v=STSv1; id=same;", "v=STSv1; id=same;"}));
	CHECK_FALSE(pick_record({"v=STSv1; id=good;", "v=STSv1; id=bad!"}));
}

TEST_CASE("MTA-STS: invalid TXT records") {
	for (const std::string& txt : std::vector<std::string>{
		 "v=STSv1;",                                         // no id
		 "v=STSv1; ext=1",                                   // no id
		 "v=STSv1; ID=abc",                                  // %s"id=": "ID" is an extension, so no id
		 "v=STSv1; id=",                                     // empty id
		 "v=STSv1; id=" + std::string(33, 'a'),              // 33 characters
		 "v=STSv1; id=2016-08-31",                           // punctuation
		 "v=STSv1; id=abc.def",                              // punctuation
		 "v=STSv1; id=abc def",                              // a space inside
		 "v=STSv1; id=abc; ext",                             // a field without '='
		 "v=STSv1; id=abc; _ext=1",                          // extension name starts with '_'
		 "v=STSv1; id=abc; ext=",                            // empty extension value
		 "v=STSv1; id=abc; ext=a=b",                         // '=' inside an extension value
		 "v=STSv1; id=abc; " + std::string(33, 'e') + "=1",  // extension name over 32
		 "v=STSv1;; id=abc",                                 // an empty field
		 "v=STSv1; id=abc;;",                                // two delimiters at the end
	     }) {
		CAPTURE(txt);
		CHECK_FALSE(pick_record({txt}));
	}
}

// ---------------------------------------------------------------- policy

TEST_CASE("MTA-STS: policy of RFC 8461 3.2") {
	std::string error = "untouched";
	auto p = parse_policy(rfc_policy, &error);
	REQUIRE(p);
	CHECK(error == "untouched");
	CHECK(p->mode == Mode::enforce);
	CHECK(p->mx == std::vector<std::string>{"mail.example.com", "*.example.net", "backupmx.example.com"});
	CHECK(p->max_age == 604800);
}

TEST_CASE("MTA-STS: policy line ends, spacing, order and case of mx") {
	auto p = parse_policy(
	    "max_age: 86400\r\n"
	    "mx:   MX1.Example.COM.  \r\n"
	    "\r\n"
	    "mode:testing\r\n"
	    "  version :\tSTSv1\t\r\n"
	    "mx: *.Backup.example.org");  // the last line without its end
	REQUIRE(p);
	CHECK(p->mode == Mode::testing);
	CHECK(p->max_age == 86400);
	CHECK(p->mx == std::vector<std::string>{"mx1.example.com", "*.backup.example.org"});
}

TEST_CASE("MTA-STS: policy mode none, unknown keys, repeated keys") {
	auto p = parse_policy("version: STSv1\nmode: none\nmax_age: 0\n");
	REQUIRE(p);
	CHECK(p->mode == Mode::none);
	CHECK(p->mx.empty());
	CHECK(p->max_age == 0);

	// Unknown keys are ignored; for keys other than mx the first counts.
	p = parse_policy(
	    "version: STSv1\nfuture_key: whatever: it says\nmode: testing\nmode: enforce\n"
	    "max_age: 60\nmax_age: 120\nmx: a.example\nversion: STSv2\n");
	REQUIRE(p);
	CHECK(p->mode == Mode::testing);
	CHECK(p->max_age == 60);
	CHECK(p->mx == std::vector<std::string>{"a.example"});
}

TEST_CASE("MTA-STS: mode names round-trip through the policy") {
	for (Mode mode : {Mode::enforce, Mode::testing, Mode::none}) {
		std::string name = mode_name(mode);
		CAPTURE(name);
		auto p = parse_policy("version: STSv1\nmode: " + name + "\nmx: a.example\nmax_age: 1\n");
		REQUIRE(p);
		CHECK(p->mode == mode);
	}
	CHECK(std::string(mode_name(Mode::enforce)) == "enforce");
}

TEST_CASE("MTA-STS: policy max_age") {
	auto max_age_of = [](const std::string& value) -> std::optional<int64_t> {
		auto p = parse_policy("version: STSv1\nmode: none\nmax_age: " + value + "\n");
		if (!p) return std::nullopt;
		return p->max_age;
	};
	CHECK(max_age_of("31557600") == 31557600);
	CHECK(max_age_of("31557601") == 31557600);    // capped
	CHECK(max_age_of("9999999999") == 31557600);  // ten digits, capped
	CHECK(max_age_of("0000000042") == 42);
	CHECK_FALSE(max_age_of("10000000000"));  // eleven digits
	CHECK_FALSE(max_age_of("00000000001"));  // eleven digits
	CHECK_FALSE(max_age_of("-1"));
	CHECK_FALSE(max_age_of("+5"));
	CHECK_FALSE(max_age_of("1e6"));
	CHECK_FALSE(max_age_of("86400s"));
	CHECK_FALSE(max_age_of("86 400"));
	CHECK_FALSE(max_age_of(""));
	CHECK(policy_error("version: STSv1\nmode: none\nmax_age: week\n") == "bad max_age \"week\"");
}

TEST_CASE("MTA-STS: invalid policies") {
	CHECK(policy_error("") == "no version");
	CHECK(policy_error("mode: enforce\nmx: a.example\nmax_age: 1\n") == "no version");
	CHECK(policy_error("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n") == "version is not STSv1");
	CHECK(policy_error("version: stsv1\nmode: enforce\nmx: a.example\nmax_age: 1\n") == "version is not STSv1");
	CHECK(policy_error("version: STSv1\nmx: a.example\nmax_age: 1\n") == "no mode");
	CHECK(policy_error("version: STSv1\nmode: reject\nmx: a.example\nmax_age: 1\n") == "unknown mode \"reject\"");
	CHECK(policy_error("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n") == "unknown mode \"Enforce\"");
	CHECK(policy_error("version: STSv1\nmode: enforce\nmx: a.example\n") == "no max_age");
	CHECK(policy_error("version: STSv1\nmode: enforce\nmax_age: 1\n") == "no mx");
	CHECK(policy_error("version: STSv1\nmode: testing\nmax_age: 1\n") == "no mx");
	// Keys are case-sensitive (%s in the ABNF): "Mode" is an unknown key.
	CHECK(policy_error("version: STSv1\nMode: enforce\nmx: a.example\nmax_age: 1\n") == "no mode");
	CHECK(policy_error("version: STSv1\nmode enforce\nmx: a.example\nmax_age: 1\n") ==
	      "policy line without a colon");
	for (const char* mx : {"", "*", "*.", "mx.*.example", "**.example", "a..example", "-a.example", "a-.example",
	                       "a_b.example", "mail.example.com/path", "."}) {
		CAPTURE(mx);
		CHECK(policy_error(std::string("version: STSv1\nmode: enforce\nmx: ") + mx + "\nmax_age: 1\n") ==
		      "bad mx \"" + std::string(mx) + "\"");
	}
	// D43: at most 100 mx lines.
	std::string many = "version: STSv1\nmode: enforce\nmax_age: 86400\n";
	for (int i = 0; i < 100; ++i) many += "mx: mx" + std::to_string(i) + ".example\n";
	auto hundred = parse_policy(many);
	REQUIRE(hundred);
	CHECK(hundred->mx.size() == 100);
	CHECK(policy_error(many + "mx: one-more.example\n") == "more than 100 mx patterns");
	// Without an error pointer it still fails.
	CHECK_FALSE(parse_policy("version: STSv1\n"));
}

// ---------------------------------------------------------------- mx matching

TEST_CASE("MTA-STS: mx patterns of RFC 8461 4.1") {
	auto p = parse_policy(rfc_policy);
	REQUIRE(p);
	CHECK(mx_matches(*p, "mail.example.com"));
	CHECK(mx_matches(*p, "backupmx.example.com"));
	CHECK(mx_matches(*p, "mx1.example.net"));
	CHECK_FALSE(mx_matches(*p, "example.net"));      // the wildcard needs one label
	CHECK_FALSE(mx_matches(*p, "a.b.example.net"));  // and only one
	CHECK_FALSE(mx_matches(*p, ".example.net"));     // an empty label is none
	CHECK_FALSE(mx_matches(*p, "other.example.com"));
	CHECK_FALSE(mx_matches(*p, "example.com"));
	CHECK_FALSE(mx_matches(*p, "xmail.example.com"));
	CHECK_FALSE(mx_matches(*p, "mail.example.com.evil"));
	CHECK_FALSE(mx_matches(*p, "mx1.example.network"));
	CHECK_FALSE(mx_matches(*p, ""));
	CHECK_FALSE(mx_matches(*p, "."));
}

TEST_CASE("MTA-STS: mx matching ignores case and a trailing dot") {
	auto p = parse_policy("version: STSv1\nmode: enforce\nmx: Mail.Example.COM.\nmx: *.EXAMPLE.net.\nmax_age: 1\n");
	REQUIRE(p);
	CHECK(mx_matches(*p, "mail.example.com"));
	CHECK(mx_matches(*p, "MAIL.EXAMPLE.COM."));
	CHECK(mx_matches(*p, "Mx7.Example.Net"));
	CHECK(mx_matches(*p, "mx7.example.net."));
	CHECK_FALSE(mx_matches(*p, "mail.example.com.."));
	CHECK_FALSE(mx_matches(*p, "A.B.example.net."));

	// A Policy built by hand, not lower-cased, compares the same way.
	Policy hand = policy_with({"MX.Example.ORG.", "*.Pool.Example.ORG"});
	CHECK(mx_matches(hand, "mx.example.org"));
	CHECK(mx_matches(hand, "a1.pool.example.org."));
	CHECK_FALSE(mx_matches(hand, "pool.example.org"));

	CHECK_FALSE(mx_matches(policy_with({}), "mx.example.org"));
}

// ---------------------------------------------------------------- HTTP

TEST_CASE("MTA-STS: HTTP 200 with Content-Length") {
	std::string body = rfc_policy;
	std::string raw =
	    "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: " +
	    std::to_string(body.size()) + "\r\n\r\n" + body;
	std::string error = "untouched";
	auto got = policy_body_from_http(raw, &error);
	REQUIRE(got);
	CHECK(*got == body);
	CHECK(error == "untouched");
	CHECK(parse_policy(*got));

	// Bytes past Content-Length are not part of the body.
	got = policy_body_from_http(raw + "GARBAGE");
	REQUIRE(got);
	CHECK(*got == body);

	// Field names and the media type are case-insensitive.
	got = policy_body_from_http("HTTP/1.0 200 OK\r\ncontent-length:  3\r\nCONTENT-TYPE: Text/Plain\r\n\r\nabc");
	REQUIRE(got);
	CHECK(*got == "abc");

	// An empty reason phrase, and none at all.
	got = policy_body_from_http("HTTP/1.1 200 \r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok");
	REQUIRE(got);
	CHECK(*got == "ok");
	got = policy_body_from_http("HTTP/1.1 200\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n");
	REQUIRE(got);
	CHECK(*got == "");
}

TEST_CASE("MTA-STS: HTTP chunked body") {
	const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
	std::string raw = head +
	    "f;name=value\r\nversion: STSv1\n\r\n"
	    "E ; ext\r\nmode: enforce\n\r\n"
	    "1a\r\nmx: mail.example.com\nmax_a\r\n"
	    "a\r\nge: 86400\n\r\n"
	    "0;last=1\r\nExpires: never\r\n\r\n";
	auto got = policy_body_from_http(raw);
	REQUIRE(got);
	CHECK(*got == "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n");
	auto p = parse_policy(*got);
	REQUIRE(p);
	CHECK(p->max_age == 86400);
	CHECK(http_response_complete(raw));

	// Transfer-Encoding wins over Content-Length (RFC 9112 6.3).
	got = policy_body_from_http(
	    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\nTransfer-Encoding: Chunked\r\n\r\n"
	    "3\r\nabc\r\n0\r\n\r\n");
	REQUIRE(got);
	CHECK(*got == "abc");

	// A close right after the last chunk, before the end of the trailers, still
	// gives the body.
	got = policy_body_from_http(head + "3\r\nabc\r\n0\r\n");
	REQUIRE(got);
	CHECK(*got == "abc");

	CHECK(http_error(head + "3\r\nabc\r\n") == "truncated body");
	CHECK(http_error(head + "5\r\nabc") == "truncated body");
	CHECK(http_error(head + "3\r\nabc") == "truncated body");
	CHECK(http_error(head) == "truncated body");
	CHECK(http_error(head + "xyz\r\nabc\r\n0\r\n\r\n") == "bad chunk size");
	CHECK(http_error(head + "\r\nabc\r\n0\r\n\r\n") == "bad chunk size");
	CHECK(http_error(head + "3 x\r\nabc\r\n0\r\n\r\n") == "bad chunk size");
	CHECK(http_error(head + "fffffffffffffffff\r\nabc\r\n0\r\n\r\n") == "bad chunk size");
	CHECK(http_error(head + "2\r\nabc\r\n0\r\n\r\n") == "bad chunk end");
	CHECK(http_error("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
	                 "3\r\nabc\r\n0\r\n\r\n") == "unsupported Transfer-Encoding gzip, chunked");
}

TEST_CASE("MTA-STS: HTTP statuses other than 200 are refused") {
	CHECK(http_error("HTTP/1.1 301 Moved Permanently\r\nLocation: https://elsewhere.example/\r\n"
	                 "Content-Type: text/plain\r\nContent-Length: 0\r\n\r\n") == "HTTP status 301");
	CHECK(http_error("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\nversion: STSv1\n") ==
	      "HTTP status 404");
	CHECK(http_error("HTTP/1.1 204 No Content\r\n\r\n") == "HTTP status 204");
	CHECK(http_error("HTTP/1.1 500 Oops\r\n\r\n") == "HTTP status 500");

	// An interim 100 response is skipped; the final one counts.
	auto got = policy_body_from_http(
	    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi");
	REQUIRE(got);
	CHECK(*got == "hi");
	CHECK(http_error("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n") == "HTTP status 403");
}

TEST_CASE("MTA-STS: HTTP content type") {
	CHECK(http_error("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nhi") ==
	      "Content-Type text/html is not text/plain");
	CHECK(http_error("HTTP/1.1 200 OK\r\nContent-Type: text/plainx\r\nContent-Length: 2\r\n\r\nhi") ==
	      "Content-Type text/plainx is not text/plain");
	CHECK(http_error("HTTP/1.1 200 OK\r\nContent-Type: text/html; x=text/plain\r\nContent-Length: 2\r\n\r\nhi") ==
	      "Content-Type text/html; x=text/plain is not text/plain");
	CHECK(http_error("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi") == "no Content-Type");
	CHECK(http_error("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n\r\nhi") ==
	      "unsupported Content-Encoding gzip");

	auto got = policy_body_from_http(
	    "HTTP/1.1 200 OK\r\nContent-Type:text/plain ;charset=\"UTF-8\"\r\n"
	    "Content-Encoding: identity\r\nContent-Length: 2\r\n\r\nhi");
	REQUIRE(got);
	CHECK(*got == "hi");
}

TEST_CASE("MTA-STS: HTTP truncated body and bad Content-Length") {
	CHECK(http_error("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nshort") ==
	      "truncated body");
	CHECK(http_error("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\n") ==
	      "truncated body");
	CHECK(http_error("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: x\r\n\r\nabc") ==
	      "bad Content-Length");
	CHECK(http_error("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"
	                 "abcd") == "bad Content-Length");
	// Repeated identical values are one.
	auto got = policy_body_from_http(
	    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabcd");
	REQUIRE(got);
	CHECK(*got == "abc");
}

TEST_CASE("MTA-STS: HTTP body without framing runs to the close") {
	std::string raw = std::string("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n") + rfc_policy;
	auto got = policy_body_from_http(raw);
	REQUIRE(got);
	CHECK(*got == rfc_policy);
	CHECK_FALSE(http_response_complete(raw));

	got = policy_body_from_http("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
	REQUIRE(got);
	CHECK(*got == "");
}

TEST_CASE("MTA-STS: HTTP header lines ending in bare LF") {
	auto got = policy_body_from_http("HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 5\n\nab\r\nc");
	REQUIRE(got);
	CHECK(*got == "ab\r\nc");

	// Mixed line ends, a folded field line, and bare LF in the chunked framing.
	got = policy_body_from_http(
	    "HTTP/1.1 200 OK\r\nX-Long: one\n two\r\nContent-Type: text/plain\nTransfer-Encoding: chunked\n\n"
	    "2\nab\n0\n\n");
	REQUIRE(got);
	CHECK(*got == "ab");
}

TEST_CASE("MTA-STS: HTTP malformed and truncated heads") {
	CHECK(http_error("") == "truncated HTTP response head");
	CHECK(http_error("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n") == "truncated HTTP response head");
	CHECK(http_error("HTTP/1.1 200 OK") == "truncated HTTP response head");
	for (const char* raw :
	     {"HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1  200 OK\r\n\r\n",
	      "http/1.1 200 OK\r\n\r\n", "SSH-2.0-OpenSSH_9.2\r\n\r\n", "<html>\r\n\r\n",
	      "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
	      "HTTP/1.1 200 OK\r\n folded first\r\n\r\n", "HTTP/2.0 200 OK and no line end yet"}) {
		CAPTURE(raw);
		CHECK(http_error(raw) == "malformed HTTP response head");
		CHECK_FALSE(http_response_complete(raw));
	}
	// Without an error pointer it still fails.
	CHECK_FALSE(policy_body_from_http("HTTP/1.1 404 Not Found\r\n\r\n"));
}

TEST_CASE("MTA-STS: http_response_complete with Content-Length") {
	const std::string raw = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
	for (size_t n = 0; n < raw.size(); ++n) {
		CAPTURE(n);
		CHECK_FALSE(http_response_complete(raw.substr(0, n)));
	}
	CHECK(http_response_complete(raw));
	CHECK(http_response_complete(raw + "extra"));

	// The head alone completes a response with Content-Length 0, and a 204.
	CHECK(http_response_complete("HTTP/1.1 301 Moved\r\nLocation: x\r\nContent-Length: 0\r\n\r\n"));
	CHECK_FALSE(http_response_complete("HTTP/1.1 301 Moved\r\nLocation: x\r\nContent-Length: 0\r\n"));
	CHECK(http_response_complete("HTTP/1.1 204 No Content\r\n\r\n"));
	// An interim response is not the end.
	CHECK_FALSE(http_response_complete("HTTP/1.1 100 Continue\r\n\r\n"));
	// A body that ends at the close is never complete before it.
	CHECK_FALSE(http_response_complete("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nversion: STSv1\n"));
	// Framing that cannot be read leaves the decision to the close.
	CHECK_FALSE(http_response_complete("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nabc"));
	CHECK_FALSE(http_response_complete("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc"));
}

TEST_CASE("MTA-STS: http_response_complete with chunks") {
	const std::string raw =
	    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5;x=y\r\nhello\r\n0\r\nTrailer: t\r\n\r\n";
	for (size_t n = 0; n < raw.size(); ++n) {
		CAPTURE(n);
		CHECK_FALSE(http_response_complete(raw.substr(0, n)));
	}
	CHECK(http_response_complete(raw));
	auto got = policy_body_from_http(raw);
	REQUIRE(got);
	CHECK(*got == "hello");

	// Bare LF framing completes too; a bad chunk never does.
	CHECK(http_response_complete("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n1\nx\n0\n\n"));
	CHECK_FALSE(
	    http_response_complete("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"));
}
