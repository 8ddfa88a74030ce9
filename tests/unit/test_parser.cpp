// SMTP argument parser: good and bad productions with the model's exact
// replies (doc/behaviour.md §3, §4; doc/behaviour.md §3).
#include <doctest/doctest.h>

#include <string>

#include "smtp/go_printable.h"
#include "smtp/parser.h"

using namespace tern::smtp;

namespace {

ParseMode delivery() { return ParseMode{}; }

ParseMode submission() {
	ParseMode m;
	m.submission = true;
	return m;
}

ParseMode authenticated() {
	ParseMode m = submission();
	m.authenticated = true;
	return m;
}

ParseMode pedantic_submission() {
	ParseMode m = submission();
	m.pedantic = true;
	return m;
}

ParseMode with_smtputf8(ParseMode m) {
	m.smtputf8 = true;
	return m;
}

// The refusal a parser returned; an accepted result fails the test.
template <class T>
SmtpError error_of(const Result<T>& r) {
	REQUIRE_FALSE(r.ok());
	return r.error();
}

// The value a parser returned; a refusal fails the test with its reply.
template <class T>
T value_of(Result<T> r) {
	if (!r.ok()) FAIL("refused: " << r.error().code << " " << r.error().text);
	return std::move(*r);
}

std::string reply_of(const SmtpError& e) {
	return std::to_string(e.code) + " " + enhanced_code(e.code, e.secode) + " " + e.text;
}

std::string mail_error(std::string_view args, const ParseMode& mode) {
	return reply_of(error_of(parse_mail(args, mode)));
}

std::string rcpt_error(std::string_view args, const ParseMode& mode) {
	return reply_of(error_of(parse_rcpt(args, mode)));
}

std::string hello_error(std::string_view args, bool ehlo, const ParseMode& mode) {
	return reply_of(error_of(parse_hello(args, ehlo, mode)));
}

}  // namespace

TEST_CASE("parser: the command verb is lower-cased as the model's Unicode lower-casing does") {
	CHECK(command_verb("MAIL") == "mail");
	CHECK(command_verb("StartTLS") == "starttls");
	CHECK(command_verb("QU\xc4\xb0T") == "quit");         // U+0130 lowers to "i"
	CHECK(command_verb("\xe2\x84\xaa") == "k");           // KELVIN SIGN lowers to "k"
	CHECK(command_verb("MA\xc3\x8dL") == "ma\xc3\x8dl");  // other letters stay non-ASCII: no command
	CHECK(command_verb("QU\xc4") == "qu\xc4");            // a cut sequence stays as it is
	CHECK(command_verb("") == "");
}

TEST_CASE("MAIL FROM with a plain address") {
	MailArgs m = value_of(parse_mail(" FROM:<Mox@LocalHost>", submission()));
	REQUIRE(m.from);
	CHECK(m.from->localpart == "Mox");
	CHECK(m.from->domain.ascii == "localhost");
	CHECK(m.from->domain.unicode == "localhost");
	CHECK_FALSE(m.from->ip);
	CHECK(m.from->to_string() == "Mox@localhost");
	CHECK_FALSE(m.size);
	CHECK_FALSE(m.body_8bitmime);
	CHECK_FALSE(m.smtputf8);
	CHECK_FALSE(m.auth);
}

TEST_CASE("MAIL FROM keyword is case-insensitive; null sender") {
	MailArgs m = value_of(parse_mail(" from:<>", delivery()));
	CHECK_FALSE(m.from);
	CHECK_FALSE(value_of(parse_mail(" From:<>", submission())).from);
}

TEST_CASE("MAIL FROM missing pieces") {
	CHECK(mail_error(" FROM<a@b.example>", submission()) == "501 5.5.2 bad syntax: expected \" FROM:\"");
	CHECK(mail_error(" FROM:a@b.example", submission()) == "501 5.5.2 bad syntax: expected \"<\"");
	CHECK(mail_error(" FROM:<a@b.example", submission()) == "501 5.5.2 bad syntax: expected \">\"");
	CHECK(mail_error(" FROM:<a@>", submission()) == "501 5.5.2 bad syntax: need at least one char for subdomain");
	CHECK(mail_error(" FROM:<a>", submission()) == "501 5.5.2 bad syntax: expected \"@\"");
	// A leading "@" starts a source route.
	CHECK(mail_error(" FROM:<@b.example>", submission()) == "501 5.5.2 bad syntax: expected \":\"");
	CHECK(mail_error(" FROM:<a@.example>", submission()) ==
	      "501 5.5.2 bad syntax: expected at least one char for subdomain");
}

TEST_CASE("optional space after FROM: only on non-pedantic submission") {
	MailArgs m = value_of(parse_mail(" FROM: <mox@localhost>", submission()));
	REQUIRE(m.from);
	CHECK(m.from->to_string() == "mox@localhost");
	CHECK(mail_error(" FROM: <mox@localhost>", delivery()) == "501 5.5.2 bad syntax: expected \"<\"");
	// doc/behaviour.md §3, captured from an authenticated pedantic session.
	ParseMode m2 = pedantic_submission();
	m2.authenticated = true;
	CHECK(mail_error(" FROM: <mox@localhost>", m2) ==
	      "501 5.5.2 bad syntax: expected \"<\" (remaining \" <mox@localhost>\")");
}

TEST_CASE("remaining suffix only when authenticated") {
	CHECK(mail_error(" FROM:<a@b.example> ", submission()) ==
	      "501 5.5.2 bad syntax: need at least one char for parameter keyword");
	CHECK(mail_error(" FROM:<a@b.example> ", authenticated()) ==
	      "501 5.5.2 bad syntax: need at least one char for parameter keyword (remaining \"\")");
	CHECK(mail_error(" FROM:<a@b.example> !x", authenticated()) ==
	      "501 5.5.2 bad syntax: expected at least one char for parameter keyword (remaining \"!x\")");
}

TEST_CASE("MAIL SIZE over the limit is refused as soon as it is read") {
	// RFC 1870 6.1; the model checks it inside its parameter loop, before
	// later parameters and the address are looked at.
	const int64_t limit = 100 * 1024 * 1024;
	auto too_large = [&](const char* args) { return reply_of(error_of(parse_mail(args, submission(), limit))); };
	CHECK(too_large(" FROM:<a@b.example> SIZE=999999999") == "552 5.3.4 message too large");
	CHECK(too_large(" FROM:<a@b.example> SIZE=999999999 FOO=1") == "552 5.3.4 message too large");
	CHECK(too_large(" FROM:<a@b.example> SIZE=999999999 SIZE=1") == "552 5.3.4 message too large");
	CHECK(too_large(" FROM:<a@b.example> SIZE=999999999 BODY=X") == "552 5.3.4 message too large");
	CHECK(too_large(" FROM:<a@@b.example> SIZE=999999999") == "552 5.3.4 message too large");
	CHECK(reply_of(error_of(parse_mail(" FROM:<a@b.example> SIZE=5000", submission(), 4096))) ==
	      "552 5.2.3 message too large");
	// Parameters before SIZE are judged first.
	CHECK(too_large(" FROM:<a@b.example> FOO=1 SIZE=999999999") == "555 5.3.3 unrecognized parameter \"FOO\"");
	CHECK(*value_of(parse_mail(" FROM:<a@b.example> SIZE=104857600", submission(), limit)).size == limit);
}

TEST_CASE("MAIL SIZE parameter") {
	CHECK(*value_of(parse_mail(" FROM:<a@b.example> SIZE=1000", submission())).size == 1000);
	CHECK(*value_of(parse_mail(" FROM:<a@b.example> size=0", submission())).size == 0);
	CHECK(*value_of(parse_mail(" FROM:<a@b.example> SIZE=9223372036854775807", submission())).size ==
	      9223372036854775807LL);
	CHECK(mail_error(" FROM:<a@b.example> SIZE=9223372036854775808", submission()) ==
	      "501 5.5.2 bad syntax: bad number \"9223372036854775808\": strconv.ParseInt: parsing "
	      "\"9223372036854775808\": value out of range");
	// 21 digits: 20 are taken, the number is out of range, one remains.
	CHECK(mail_error(" FROM:<a@b.example> SIZE=100000000000000000000", authenticated()) ==
	      "501 5.5.2 bad syntax: bad number \"10000000000000000000\": strconv.ParseInt: parsing "
	      "\"10000000000000000000\": value out of range (remaining \"0\")");
	CHECK(mail_error(" FROM:<a@b.example> SIZE=", submission()) ==
	      "501 5.5.2 bad syntax: need at least one char for number");
	CHECK(mail_error(" FROM:<a@b.example> SIZE=x", submission()) ==
	      "501 5.5.2 bad syntax: expected at least one char for number");
	CHECK(mail_error(" FROM:<a@b.example> SIZE", submission()) == "501 5.5.2 bad syntax: expected \"=\"");
}

TEST_CASE("MAIL BODY parameter") {
	CHECK(value_of(parse_mail(" FROM:<a@b.example> BODY=8BITMIME", submission())).body_8bitmime);
	CHECK(value_of(parse_mail(" FROM:<a@b.example> body=8bitmime", submission())).body_8bitmime);
	CHECK_FALSE(value_of(parse_mail(" FROM:<a@b.example> BODY=7bit", submission())).body_8bitmime);
	CHECK(mail_error(" FROM:<a@b.example> BODY=BINARYMIME", submission()) ==
	      "555 5.5.4 unrecognized parameter \"BODY\"");
	// The keyword is reported as written, as the model does.
	CHECK(mail_error(" FROM:<a@b.example> Body=BINARYMIME", submission()) ==
	      "555 5.5.4 unrecognized parameter \"Body\"");
	CHECK(mail_error(" FROM:<a@b.example> BODY=", submission()) ==
	      "501 5.5.2 bad syntax: need at least one char for parameter value");
}

TEST_CASE("MAIL AUTH parameter (doc/behaviour.md D3)") {
	auto m = value_of(parse_mail(" FROM:<a@b.example> AUTH=<>", submission()));
	REQUIRE(m.auth);
	CHECK(*m.auth == "<>");
	m = value_of(parse_mail(" FROM:<a@b.example> AUTH=<user+40example.com> SIZE=10", submission()));
	REQUIRE(m.auth);
	CHECK(*m.auth == "<user@example.com>");
	CHECK(*m.size == 10);
	m = value_of(parse_mail(" FROM:<a@b.example> AUTH=plain+2Bxtext", delivery()));
	CHECK(*m.auth == "plain+xtext");
	CHECK(mail_error(" FROM:<a@b.example> AUTH=<a+4x>", submission()) ==
	      "501 5.5.2 bad syntax: parsing xtext: invalid hexadecimal \"4x\"");
	CHECK(mail_error(" FROM:<a@b.example> AUTH=<a+4a>", submission()) ==
	      "501 5.5.2 bad syntax: parsing xtext: invalid hexadecimal \"4a\"");
	CHECK(mail_error(" FROM:<a@b.example> AUTH=a+4", submission()) ==
	      "501 5.5.2 bad syntax: parsing xtext: invalid hexadecimal \"4\"");
	CHECK(mail_error(" FROM:<a@b.example> AUTH=a=b", submission()) ==
	      "501 5.5.2 bad syntax: parsing xtext: invalid character \"=\"");
}

TEST_CASE("MAIL SMTPUTF8 parameter enables UTF-8 in the path given before it") {
	auto m = value_of(parse_mail(" FROM:<jöran@bücher.example> SMTPUTF8", submission()));
	CHECK(m.smtputf8);
	REQUIRE(m.from);
	CHECK(m.from->localpart == "jöran");
	CHECK(m.from->domain.ascii == "xn--bcher-kva.example");
	CHECK(m.from->domain.unicode == "bücher.example");
	CHECK(m.from->to_string() == "jöran@bücher.example");
	CHECK(m.from->to_ascii_string() == "jöran@xn--bcher-kva.example");

	// Without it: reverse path → 550 5.6.7.
	CHECK(mail_error(" FROM:<jöran@example.com>", submission()) ==
	      "550 5.6.7 non-ascii address not permitted without smtputf8");
	// A UTF-8 domain without SMTPUTF8 ends the domain early: a syntax error.
	CHECK(mail_error(" FROM:<joran@bücher.example>", authenticated()) ==
	      "501 5.5.2 bad syntax: expected end of line (remaining \"ücher.example\")");
	// Already enabled on the connection.
	CHECK(value_of(parse_mail(" FROM:<jöran@example.com>", with_smtputf8(submission()))).from->localpart ==
	      "jöran");
}

TEST_CASE("MAIL parameter errors") {
	CHECK(mail_error(" FROM:<a@b.example> FOO=bar", submission()) == "555 5.3.3 unrecognized parameter \"FOO\"");
	CHECK(mail_error(" FROM:<a@b.example> SIZE=1 size=2", submission()) == "501 5.5.4 duplicate param \"size\"");
	CHECK(mail_error(" FROM:<a@b.example> SMTPUTF8 SMTPUTF8", submission()) ==
	      "501 5.5.4 duplicate param \"SMTPUTF8\"");
	CHECK(mail_error(" FROM:<a@b.example> -X", submission()) ==
	      "501 5.5.2 bad syntax: expected at least one char for parameter keyword");
	// A parameter error wins over an error in the path: the path is parsed last.
	CHECK(mail_error(" FROM:<bad> FOO", submission()) == "555 5.3.3 unrecognized parameter \"FOO\"");
	// Errors in the path report the unparsed rest of the path.
	CHECK(mail_error(" FROM:<a@b.example!> SIZE=1", authenticated()) ==
	      "501 5.5.2 bad syntax: expected end of line (remaining \"!\")");
}

TEST_CASE("end of command: strict on submission, blanks allowed on delivery") {
	CHECK(value_of(parse_mail(" FROM:<a@b.example>\t \t", delivery())).from->localpart == "a");
	// A space starts a parameter, as in the model, so a trailing space is an error.
	CHECK(mail_error(" FROM:<a@b.example> \t", delivery()) ==
	      "501 5.5.2 bad syntax: expected at least one char for parameter keyword");
	CHECK(mail_error(" FROM:<a@b.example>\t", submission()) == "501 5.5.2 bad syntax: expected end of line");
	CHECK(mail_error(" FROM:<a@b.example>x", delivery()) ==
	      "501 5.5.2 bad syntax: trailing data, not white space: \"x\"");
	CHECK(parse_no_args("", submission()).ok());
	CHECK(parse_no_args("  ", delivery()).ok());
	CHECK(reply_of(error_of(parse_no_args(" x", delivery()))) ==
	      "501 5.5.2 bad syntax: trailing data, not white space: \" x\"");
	ParseMode auth_delivery;
	auth_delivery.authenticated = true;
	CHECK(reply_of(error_of(parse_no_args(" x", auth_delivery))) ==
	      "501 5.5.2 bad syntax: trailing data, not white space: \" x\" (remaining \"\")");
	CHECK(reply_of(error_of(parse_no_args(" x", submission()))) == "501 5.5.2 bad syntax: expected end of line");
	CHECK(reply_of(error_of(parse_no_args(" ", submission()))) == "501 5.5.2 bad syntax: expected end of line");
}

TEST_CASE("quoted localparts and escapes") {
	auto m = value_of(parse_mail(" FROM:<\"john doe\"@example.com>", submission()));
	CHECK(m.from->localpart == "john doe");
	CHECK(m.from->to_string() == "\"john doe\"@example.com");

	m = value_of(parse_mail(" FROM:<\"a\\\"b\\\\c\"@example.com>", submission()));
	CHECK(m.from->localpart == "a\"b\\c");
	CHECK(m.from->to_string() == "\"a\\\"b\\\\c\"@example.com");

	// A quoted localpart that is a valid dot-string is written unquoted.
	m = value_of(parse_mail(" FROM:<\"plain.name\"@example.com>", submission()));
	CHECK(m.from->to_string() == "plain.name@example.com");
	m = value_of(parse_mail(" FROM:<\"\"@example.com>", submission()));
	CHECK(m.from->localpart == "");
	CHECK(m.from->to_string() == "\"\"@example.com");
	m = value_of(parse_mail(" FROM:<\"a..b\"@example.com>", submission()));
	CHECK(m.from->to_string() == "\"a..b\"@example.com");

	CHECK(rcpt_error(" TO:<\"abc@example.com>", submission()) == "501 5.5.2 bad syntax: need another character");
	CHECK(rcpt_error(" TO:<\"a\tb\"@example.com>", submission()) ==
	      "501 5.5.2 bad syntax: invalid localpart, invalid character \t");
	CHECK(rcpt_error(" TO:<\"a\\\tb\"@example.com>", submission()) ==
	      "501 5.5.2 bad syntax: invalid localpart, bad escaped char \t");
	CHECK(rcpt_error(" TO:<\"jö\"@example.com>", submission()) ==
	      "553 5.6.7 non-ascii address not permitted without smtputf8");
	CHECK(value_of(parse_rcpt(" TO:<\"jö x\"@example.com>", with_smtputf8(submission()))).to.localpart == "jö x");
	// Invalid UTF-8 is refused even with SMTPUTF8 (RFC 6531 3.3 requires UTF-8).
	CHECK(reply_of(error_of(parse_rcpt(" TO:<a\xff@example.com>", with_smtputf8(submission())))) ==
	      "501 5.5.2 bad syntax: localpart is not valid utf-8");
	CHECK(reply_of(error_of(parse_rcpt(" TO:<\"a\xc3\"@example.com>", with_smtputf8(submission())))) ==
	      "501 5.5.2 bad syntax: localpart is not valid utf-8");
}

TEST_CASE("dot-string localparts") {
	auto r = value_of(parse_rcpt(" TO:<first.last+tag!#$%&'*/=?^_`{|}~-@example.com>", submission()));
	CHECK(r.to.localpart == "first.last+tag!#$%&'*/=?^_`{|}~-");
	CHECK(rcpt_error(" TO:<a..b@example.com>", submission()) ==
	      "501 5.5.2 bad syntax: expected at least one char for atom");
	CHECK(rcpt_error(" TO:<.a@example.com>", submission()) ==
	      "501 5.5.2 bad syntax: expected at least one char for atom");
	CHECK(rcpt_error(" TO:<a b@example.com>", submission()) == "501 5.5.2 bad syntax: expected \"@\"");
}

TEST_CASE("localpart length limits") {
	std::string l64(64, 'a');
	std::string l65(65, 'a');
	std::string l128(128, 'a');
	std::string l129(129, 'a');
	CHECK(value_of(parse_rcpt(" TO:<" + l64 + "@example.com>", pedantic_submission())).to.localpart == l64);
	CHECK(rcpt_error(" TO:<" + l65 + "@example.com>", pedantic_submission()) ==
	      "501 5.5.2 bad syntax: localpart longer than 64 octets");
	CHECK(value_of(parse_rcpt(" TO:<" + l128 + "@example.com>", submission())).to.localpart == l128);
	CHECK(rcpt_error(" TO:<" + l129 + "@example.com>", submission()) ==
	      "501 5.5.2 bad syntax: localpart longer than 64 octets");
}

TEST_CASE("domains: case folding, IDNA, label rules, length") {
	auto r = value_of(parse_rcpt(" TO:<x@Mail.EXAMPLE.com>", submission()));
	CHECK(r.to.domain.ascii == "mail.example.com");
	CHECK(r.to.domain.unicode == "mail.example.com");

	// A-labels are accepted without SMTPUTF8 and give the U-label form.
	r = value_of(parse_rcpt(" TO:<x@XN--BCHER-KVA.example>", submission()));
	CHECK(r.to.domain.ascii == "xn--bcher-kva.example");
	CHECK(r.to.domain.unicode == "bücher.example");
	CHECK(r.to.to_string() == "x@bücher.example");

	r = value_of(parse_rcpt(" TO:<x@Bücher.example>", with_smtputf8(submission())));
	CHECK(r.to.domain.ascii == "xn--bcher-kva.example");

	CHECK(rcpt_error(" TO:<x@-a.example>", submission()) ==
	      "501 5.5.2 bad syntax: expected at least one char for subdomain");
	CHECK(rcpt_error(" TO:<x@a..example>", submission()) ==
	      "501 5.5.2 bad syntax: expected at least one char for subdomain");
	CHECK(rcpt_error(" TO:<x@a_b.example>", submission()) == "501 5.5.2 bad syntax: expected \">\"");
	CHECK(rcpt_error(" TO:<x@xn--zz.example>", submission())
	          .starts_with("501 5.5.2 bad syntax: parsing domain name \"xn--zz.example\": "));
	CHECK(rcpt_error(" TO:<x@a-.example>", submission())
	          .starts_with("501 5.5.2 bad syntax: parsing domain name \"a-.example\": "));

	// 256 octets of domain.
	std::string label(63, 'd');
	std::string long_domain = label + "." + label + "." + label + "." + std::string(62, 'e') + ".a";
	REQUIRE(long_domain.size() == 256);
	CHECK(hello_error(" " + long_domain, true, submission()) ==
	      "501 5.5.2 bad syntax: domain longer than 255 octets");
}

TEST_CASE("address literals in paths") {
	auto r = value_of(parse_rcpt(" TO:<x@[192.0.2.1]>", submission()));
	REQUIRE(r.to.ip);
	CHECK_FALSE(r.to.ip->v6);
	CHECK(r.to.domain.empty());
	CHECK(r.to.to_string() == "x@[192.0.2.1]");

	r = value_of(parse_rcpt(" TO:<x@[ipv6:2001:DB8::1]>", submission()));
	REQUIRE(r.to.ip);
	CHECK(r.to.ip->v6);
	CHECK(r.to.to_string() == "x@[IPv6:2001:db8::1]");
	CHECK(r.to.to_ascii_string() == "x@[IPv6:2001:db8::1]");

	CHECK(rcpt_error(" TO:<x@[IPv6:192.0.2.1]>", submission()) == "501 5.5.2 bad syntax: ip address is not ipv6");
	CHECK(rcpt_error(" TO:<x@[IPv6:::ffff:192.0.2.1]>", submission()) ==
	      "501 5.5.2 bad syntax: ip address is not ipv6");
	CHECK(rcpt_error(" TO:<x@[2001:db8::1]>", submission()) ==
	      "501 5.5.2 bad syntax: ip address is ipv6, must use syntax [IPv6:...]");
	CHECK(rcpt_error(" TO:<x@[::1]>", submission()) ==
	      "501 5.5.2 bad syntax: expected at least one char for ldh-str");
	CHECK(rcpt_error(" TO:<x@[IPv4:192.0.2.1]>", submission()) ==
	      "501 5.5.2 bad syntax: unrecognized address literal \"IPv4\"");
	CHECK(rcpt_error(" TO:<x@[192.0.2.300]>", submission()) ==
	      "501 5.5.2 bad syntax: invalid ip in address: \"192.0.2.300\"");
	CHECK(rcpt_error(" TO:<x@[]>", submission()) == "501 5.5.2 bad syntax: expected at least one char for ldh-str");
}

TEST_CASE("source routes are parsed and discarded") {
	auto r = value_of(parse_rcpt(" TO:<@relay1.example,@relay2.example:user@final.example>", submission()));
	CHECK(r.to.localpart == "user");
	CHECK(r.to.domain.ascii == "final.example");
	auto m = value_of(parse_mail(" FROM:<@relay.example:u@d.example>", delivery()));
	CHECK(m.from->to_string() == "u@d.example");
	CHECK(rcpt_error(" TO:<@relay.example;user@final.example>", submission()) ==
	      "501 5.5.2 bad syntax: expected \":\"");
	CHECK(rcpt_error(" TO:<@relay.example,relay2:user@final.example>", submission()) ==
	      "501 5.5.2 bad syntax: expected \"@\"");
}

TEST_CASE("forward path length limit") {
	// "<" + 128 + "@" + domain + ">": make the whole path 257 octets.
	std::string local(100, 'l');
	std::string domain = std::string(63, 'd') + "." + std::string(63, 'e') + "." + std::string(24, 'f');
	std::string path = "<" + local + "@" + domain + ">";
	REQUIRE(path.size() == 255);
	CHECK(value_of(parse_rcpt(" TO:" + path, submission())).to.localpart == local);
	std::string longer = "<" + local + "ll@" + domain + ">";
	REQUIRE(longer.size() == 257);
	CHECK(rcpt_error(" TO:" + longer, submission()) == "501 5.5.2 bad syntax: path longer than 256 octets");
	// The reverse path has no such limit.
	CHECK(value_of(parse_mail(" FROM:" + longer, submission())).from->localpart == local + "ll");
}

TEST_CASE("RCPT TO forms") {
	auto r = value_of(parse_rcpt(" TO:<postmaster>", submission()));
	CHECK(r.postmaster);
	CHECK(value_of(parse_rcpt(" to:<PostMaster>", delivery())).postmaster);
	r = value_of(parse_rcpt(" TO:<postmaster@example.com>", delivery()));
	CHECK_FALSE(r.postmaster);
	CHECK(r.to.localpart == "postmaster");
	CHECK(rcpt_error(" TO:<x@example.com> FOO=bar", submission()) == "555 5.3.3 unrecognized parameter \"FOO\"");
	CHECK(rcpt_error(" TO:<jö@example.com>", submission()) ==
	      "553 5.6.7 non-ascii address not permitted without smtputf8");
	CHECK(rcpt_error(" TO:<>", submission()) == "501 5.5.2 bad syntax: expected at least one char for atom");
	CHECK(rcpt_error(" TO: <x@example.com>", delivery()) == "501 5.5.2 bad syntax: expected \"<\"");
	CHECK(value_of(parse_rcpt(" TO: <x@example.com>", submission())).to.localpart == "x");
	CHECK(rcpt_error(" TO:<x@example.com>  ", submission()) ==
	      "501 5.5.2 bad syntax: expected at least one char for parameter keyword");
	CHECK(value_of(parse_rcpt(" TO:<x@example.com>\t", delivery())).to.localpart == "x");
}

TEST_CASE("HELO and EHLO arguments") {
	auto h = value_of(parse_hello(" Client.Example", true, submission()));
	CHECK(h.domain.ascii == "client.example");
	CHECK_FALSE(h.ip);
	CHECK(h.raw == "Client.Example");

	// Extra text after the name is ignored (RFC 5321 4.1.1.1).
	h = value_of(parse_hello(" client.example extra words", false, submission()));
	CHECK(h.domain.ascii == "client.example");
	CHECK(h.raw == "client.example");

	h = value_of(parse_hello(" [127.0.0.1]", true, delivery()));
	REQUIRE(h.ip);
	CHECK(h.ip->to_string() == "127.0.0.1");
	CHECK(h.raw == "[127.0.0.1]");
	CHECK(h.domain.empty());

	h = value_of(parse_hello(" [IPv6:::1]", true, delivery()));
	REQUIRE(h.ip);
	CHECK(h.ip->v6);

	// Missing "]" is tolerated, as the model does.
	h = value_of(parse_hello(" [10.0.0.1", true, delivery()));
	REQUIRE(h.ip);
	CHECK(h.ip->to_string() == "10.0.0.1");

	// Untagged IPv6 in EHLO: forgiven on non-pedantic submission only.
	h = value_of(parse_hello(" [2001:db8::5]", true, submission()));
	REQUIRE(h.ip);
	CHECK(h.ip->v6);
	CHECK(hello_error(" [2001:db8::5]", true, delivery()) ==
	      "501 5.5.2 bad syntax: ip address is ipv6, must use syntax [IPv6:...]");
	CHECK(hello_error(" [2001:db8::5]", true, pedantic_submission()) ==
	      "501 5.5.2 bad syntax: ip address is ipv6, must use syntax [IPv6:...]");

	CHECK(hello_error(" [::1]", true, submission()) ==
	      "501 5.5.2 bad syntax: expected at least one char for ldh-str");
	CHECK(hello_error(" [127.0.0.1]", false, submission()) ==
	      "501 5.5.2 bad syntax: expected at least one char for subdomain");
	CHECK(hello_error("", true, submission()) == "501 5.5.2 bad syntax: expected \" \"");
	CHECK(hello_error(" ", true, submission()) == "501 5.5.2 bad syntax: need at least one char for subdomain");
	// Without SMTPUTF8 the name ends at the first non-ASCII byte and the rest
	// is ignored like any text after the name (as the model does).
	CHECK(value_of(parse_hello(" bücher.example", true, submission())).domain.ascii == "b");
	CHECK(hello_error(" übung.example", true, submission()) ==
	      "501 5.5.2 bad syntax: expected at least one char for subdomain");
	h = value_of(parse_hello(" bücher.example", true, with_smtputf8(submission())));
	CHECK(h.domain.ascii == "xn--bcher-kva.example");
}

TEST_CASE("VRFY, EXPN and NOOP arguments") {
	CHECK(value_of(parse_vrfy(" user", submission())) == "user");
	CHECK(value_of(parse_vrfy(" \"some user\"", submission())) == "some user");
	CHECK(value_of(parse_vrfy(" user smtputf8", delivery())) == "user");
	CHECK(reply_of(error_of(parse_vrfy("", submission()))) == "501 5.5.2 bad syntax: expected \" \"");
	CHECK(reply_of(error_of(parse_vrfy(" user other", submission()))) ==
	      "501 5.5.2 bad syntax: expected \"SMTPUTF8\"");
	CHECK(reply_of(error_of(parse_vrfy(" a@b", delivery()))) ==
	      "501 5.5.2 bad syntax: trailing data, not white space: \"@b\"");

	CHECK(parse_noop("", submission()).ok());
	CHECK(parse_noop(" \"x\"", submission()).ok());
	CHECK(parse_noop(" x", submission()).ok());
	CHECK(reply_of(error_of(parse_noop(" x y", delivery()))) ==
	      "501 5.5.2 bad syntax: trailing data, not white space: \" y\"");
	CHECK(reply_of(error_of(parse_noop("x", delivery()))) ==
	      "501 5.5.2 bad syntax: trailing data, not white space: \"x\"");
}

TEST_CASE("AUTH arguments") {
	AuthArgs a = value_of(parse_auth(" PLAIN", submission()));
	CHECK(a.mechanism == "PLAIN");
	CHECK_FALSE(a.initial);

	// Tern decision 4: mechanism names are case-insensitive.
	a = value_of(parse_auth(" plain AG1veEBsb2NhbGhvc3QAbW94bW94bW94", submission()));
	CHECK(a.mechanism == "PLAIN");
	REQUIRE(a.initial);
	CHECK(*a.initial == "AG1veEBsb2NhbGhvc3QAbW94bW94bW94");

	a = value_of(parse_auth(" scram-sha-256 =", submission()));
	CHECK(a.mechanism == "SCRAM-SHA-256");
	REQUIRE(a.initial);
	CHECK(*a.initial == "=");

	// The space with nothing after it is judged once the mechanism is known
	// to run (an unknown one gets its 504 first, as in the model).
	a = value_of(parse_auth(" PLAIN ", submission()));
	REQUIRE(a.initial);
	CHECK(*a.initial == "");
	CHECK(reply_of(error_of(decode_initial_response(a.initial))) ==
	      "501 5.5.2 missing initial auth base64 parameter after space");
	CHECK_FALSE(value_of(decode_initial_response(std::nullopt)).has_value());
	CHECK(value_of(decode_initial_response(std::string("="))) == std::string());
	CHECK(value_of(decode_initial_response(std::string("dGVzdA=="))) == "test");
	CHECK(reply_of(error_of(decode_initial_response(std::string("A===")))) ==
	      "501 5.5.2 invalid base64: illegal base64 data at input byte 1");
	CHECK(reply_of(error_of(decode_auth_base64("!!"))) ==
	      "501 5.5.2 invalid base64: illegal base64 data at input byte 0");
	// A stray CR (one before the line's CRLF, or inside) is passed over, as
	// the model's decoder does; it counts in the offset of a refusal.
	CHECK(value_of(decode_initial_response(std::string("dGVzdA==\r"))) == "test");
	CHECK(value_of(decode_auth_base64("dGVz\rdA==")) == "test");
	CHECK(reply_of(error_of(decode_auth_base64("dG\r!"))) ==
	      "501 5.5.2 invalid base64: illegal base64 data at input byte 3");
	CHECK(reply_of(error_of(parse_auth("", submission()))) == "501 5.5.2 bad syntax: expected \" \"");
	CHECK(reply_of(error_of(parse_auth(" ", submission()))) ==
	      "501 5.5.2 bad syntax: need at least one char for sasl-mech");
	CHECK(reply_of(error_of(parse_auth(" !", submission()))) ==
	      "501 5.5.2 bad syntax: expected at least one char for sasl-mech");
	// Text after the name without a space is judged once the mechanism is
	// known to run, as the model does: an unknown one gets its 504 and one
	// refused before TLS its 538 first.
	a = value_of(parse_auth(" PLAIN\tx", submission()));
	CHECK(a.mechanism == "PLAIN");
	CHECK_FALSE(a.initial);
	CHECK(a.unexpected == "\tx");
	CHECK(reply_of(error_of(initial_response(a, true, submission()))) == "501 5.5.2 bad syntax: expected \" \"");
	CHECK(reply_of(error_of(initial_response(a, false, submission()))) ==
	      "501 5.5.2 bad syntax: expected end of line");
	a = value_of(parse_auth(" FOO!", submission()));
	CHECK(a.mechanism == "FOO");
	CHECK(a.unexpected == "!");
	// A mechanism that takes no initial response allows nothing after it.
	a = value_of(parse_auth(" CRAM-MD5 eHl6", submission()));
	CHECK(reply_of(error_of(initial_response(a, false, submission()))) ==
	      "501 5.5.2 bad syntax: expected end of line");
	CHECK(value_of(initial_response(a, true, submission())) == std::string("xyz"));
	CHECK_FALSE(value_of(initial_response(value_of(parse_auth(" CRAM-MD5", submission())), false, submission())));
	// At most 20 characters: the 21st is text after the name.
	a = value_of(parse_auth(" ABCDEFGHIJKLMNOPQRST", submission()));
	CHECK(a.mechanism == "ABCDEFGHIJKLMNOPQRST");
	CHECK(a.unexpected.empty());
	a = value_of(parse_auth(" ABCDEFGHIJKLMNOPQRSTUVWXYZ", submission()));
	CHECK(a.mechanism == "ABCDEFGHIJKLMNOPQRST");
	CHECK(a.unexpected == "UVWXYZ");
}

TEST_CASE("parse_domain and parse_address helpers") {
	auto d = parse_domain("Bücher.Example");
	REQUIRE(d);
	CHECK(d->ascii == "xn--bcher-kva.example");
	CHECK(d->unicode == "bücher.example");
	CHECK(parse_domain("localhost")->unicode == "localhost");
	CHECK_FALSE(parse_domain(""));
	CHECK_FALSE(parse_domain("a..b"));
	CHECK_FALSE(parse_domain("example.com."));
	CHECK_FALSE(parse_domain("exa mple.com"));
	CHECK_FALSE(parse_domain("a_b.example"));

	auto a = parse_address("Jöran@Bücher.example");
	REQUIRE(a);
	CHECK(a->localpart == "Jöran");
	CHECK(a->to_ascii_string() == "Jöran@xn--bcher-kva.example");
	CHECK_FALSE(parse_address("no-at-sign"));
	CHECK_FALSE(parse_address("<a@b.example>"));
}

TEST_CASE("quote_go and syntax_error") {
	CHECK(quote_go("a\"b\\c") == "\"a\\\"b\\\\c\"");
	CHECK(quote_go("\t\r\n\x01") == "\"\\t\\r\\n\\x01\"");
	CHECK(quote_go("ü") == "\"ü\"");
	CHECK(quote_go("\xff") == "\"\\xff\"");
	CHECK(quote_go("\xc2\xa0") == "\"\\u00a0\"");
	CHECK(quote_go("\xc2\xa1") == "\"\xc2\xa1\"");
	ParseMode m;
	SmtpError e = syntax_error("expected end of line", "x", m);
	CHECK(e.code == 501);
	CHECK(e.secode == "5.2");
	CHECK(e.text == "bad syntax: expected end of line");
	m.authenticated = true;
	CHECK(syntax_error("expected end of line", "x", m).text ==
	      "bad syntax: expected end of line (remaining \"x\")");
}

TEST_CASE("quote_go escapes what Go's quoting does not print") {
	// Printable: letters, marks, numbers, punctuation, symbols, the ASCII
	// space; everything else is escaped, in four hex digits within the
	// BMP and eight above it.
	CHECK(quote_go("a\xe2\x80\x8b"
	               "b") == "\"a\\u200bb\"");                   // U+200B zero width space (Cf)
	CHECK(quote_go("\xe2\x80\xae") == "\"\\u202e\"");          // U+202E right-to-left override (Cf)
	CHECK(quote_go("\xe2\x80\xa8") == "\"\\u2028\"");          // U+2028 line separator (Zl)
	CHECK(quote_go("\xe3\x80\x80") == "\"\\u3000\"");          // U+3000 ideographic space (Zs)
	CHECK(quote_go("\xee\x80\x80") == "\"\\ue000\"");          // U+E000 private use (Co)
	CHECK(quote_go("\xcd\xb8") == "\"\\u0378\"");              // U+0378 unassigned (Cn)
	CHECK(quote_go("\xef\xbb\xbf") == "\"\\ufeff\"");          // U+FEFF byte order mark (Cf)
	CHECK(quote_go("\xf3\xa0\x80\x81") == "\"\\U000e0001\"");  // U+E0001 language tag (Cf)
	CHECK(quote_go("\xf4\x8f\xbf\xbf") == "\"\\U0010ffff\"");  // U+10FFFF (Cn)
	// Printable beyond ASCII: a combining mark, a symbol above the BMP,
	// the replacement character itself, CJK.
	CHECK(quote_go("e\xcc\x81") == "\"e\xcc\x81\"");
	CHECK(quote_go("\xf0\x9f\x98\x80") == "\"\xf0\x9f\x98\x80\"");
	CHECK(quote_go("\xef\xbf\xbd") == "\"\xef\xbf\xbd\"");
	CHECK(quote_go("\xe4\xb8\xad") == "\"\xe4\xb8\xad\"");
	// A surrogate encoded in UTF-8 is not UTF-8: its bytes are escaped.
	CHECK(quote_go("\xed\xa0\x80") == "\"\\xed\\xa0\\x80\"");
}

TEST_CASE("go_printable at the edges of its table") {
	using tern::smtp::go_printable;
	CHECK_FALSE(go_printable(0x1f));
	CHECK(go_printable(0x20));
	CHECK(go_printable(0x7e));
	CHECK_FALSE(go_printable(0x7f));
	CHECK_FALSE(go_printable(0xa0));
	CHECK(go_printable(0xa1));
	CHECK_FALSE(go_printable(0xad));
	CHECK(go_printable(0xae));
	CHECK(go_printable(0x1f600));
	CHECK_FALSE(go_printable(0x10ffff));
	CHECK_FALSE(go_printable(0x110000));
	CHECK_FALSE(go_printable(0xffffffff));
}

TEST_CASE("parser: a domain that IDNA mapping empties is refused (fuzzing regression)") {
	CHECK_FALSE(tern::smtp::parse_domain("\xc2\xad").has_value());
	CHECK_FALSE(tern::smtp::parse_domain("\xc2\xad.example").has_value());
}

TEST_CASE("parser: a domain that IDNA mapping turns into a non-LDH name is refused (fuzzing regression)") {
	// U+00A0 (no-break space) maps to a space, U+FF3F (fullwidth low line)
	// to "_", U+2488 ("1.") to "1." (UTS #46 disallowed_STD3_mapped):
	// without the STD3 rules a name with a space or an underscore would come
	// out as the A-label form.
	for (std::string name : {"\xc2\xa0"
	                         "0",
	                         "a\xc2\xa0"
	                         "b.example",
	                         "\xef\xbc\xbf"
	                         "x.example"}) {
		CAPTURE(name);
		CHECK_FALSE(tern::smtp::parse_domain(name).has_value());
	}
	// Characters mapped to letters, digits or a dot stay: fullwidth letters
	// and the ideographic full stop.
	auto fullwidth = tern::smtp::parse_domain("\xef\xbd\x85x.example");  // U+FF45 "e"
	REQUIRE(fullwidth);
	CHECK(fullwidth->ascii == "ex.example");
	auto ideographic = tern::smtp::parse_domain(
	    "b\xc3\xbcro\xe3\x80\x82"
	    "example");  // "büro。example"
	REQUIRE(ideographic);
	CHECK(ideographic->ascii == "xn--bro-hoa.example");
	// Every A-label form that comes out is a domain itself.
	for (const char* name : {"b\xc3\xbcro.example", "\xe4\xbe\x8b\xe3\x81\x88.jp"}) {
		auto d = tern::smtp::parse_domain(name);
		REQUIRE(d);
		CHECK(tern::smtp::parse_domain(d->ascii).has_value());
	}
}

TEST_CASE("MAIL FROM DSN parameters and REQUIRETLS (RFC 3461 4.3, 4.4; RFC 8689 2)") {
	MailArgs m = value_of(parse_mail(" FROM:<a@b.example> RET=hdrs ENVID=QQ+2B1+3D2 REQUIRETLS", delivery()));
	CHECK(m.ret == DsnRet::hdrs);
	REQUIRE(m.envid);
	CHECK(*m.envid == "QQ+1=2");
	CHECK(m.requiretls);
	m = value_of(parse_mail(" FROM:<a@b.example> RET=FULL", submission()));
	CHECK(m.ret == DsnRet::full);
	CHECK_FALSE(m.envid);
	CHECK_FALSE(m.requiretls);
	CHECK(value_of(parse_mail(" FROM:<a@b.example>", delivery())).ret == DsnRet::unset);

	CHECK(mail_error(" FROM:<a@b.example> RET=ALL", delivery()) == "501 5.5.4 invalid RET parameter \"ALL\"");
	CHECK(mail_error(" FROM:<a@b.example> RET=FULL RET=HDRS", delivery()) == "501 5.5.4 duplicate param \"RET\"");
	CHECK(mail_error(" FROM:<a@b.example> ENVID=a ENVID=b", delivery()) == "501 5.5.4 duplicate param \"ENVID\"");
	CHECK(mail_error(" FROM:<a@b.example> ENVID=a+2", delivery()) == "501 5.5.4 invalid ENVID parameter \"a+2\"");
	CHECK(mail_error(" FROM:<a@b.example> ENVID=a+0A", delivery()) == "501 5.5.4 invalid ENVID parameter \"a+0A\"");
	CHECK(mail_error(" FROM:<a@b.example> ENVID=" + std::string(101, 'x'), delivery())
	          .starts_with("501 5.5.4 invalid ENVID parameter"));
	CHECK(value_of(parse_mail(" FROM:<a@b.example> ENVID=" + std::string(100, 'x'), delivery())).envid->size() ==
	      100);
	CHECK(mail_error(" FROM:<a@b.example> REQUIRETLS REQUIRETLS", delivery()) ==
	      "501 5.5.4 duplicate param \"REQUIRETLS\"");
}

TEST_CASE("RCPT TO DSN parameters NOTIFY and ORCPT (RFC 3461 4.1, 4.2; RFC 6533 4)") {
	RcptArgs r = value_of(
	    parse_rcpt(" TO:<x@example.com> NOTIFY=success,Delay ORCPT=rfc822;x+2Bq@example.com", delivery()));
	CHECK(r.notify == (notify_success | notify_delay));
	REQUIRE(r.orcpt);
	CHECK(r.orcpt->type == "rfc822");
	CHECK(r.orcpt->address == "x+q@example.com");
	r = value_of(parse_rcpt(" TO:<x@example.com> NOTIFY=NEVER", submission()));
	CHECK(r.notify == notify_never);
	CHECK_FALSE(r.orcpt);
	CHECK(value_of(parse_rcpt(" TO:<postmaster> ORCPT=RFC822;postmaster@y.example", submission())).orcpt->type ==
	      "rfc822");
	CHECK(value_of(parse_rcpt(" TO:<x@example.com>", delivery())).notify == 0);

	CHECK(rcpt_error(" TO:<x@example.com> NOTIFY=NEVER,SUCCESS", delivery()) ==
	      "501 5.5.4 invalid NOTIFY parameter \"NEVER,SUCCESS\"");
	CHECK(rcpt_error(" TO:<x@example.com> NOTIFY=SUCCESS,SUCCESS", delivery()) ==
	      "501 5.5.4 invalid NOTIFY parameter \"SUCCESS,SUCCESS\"");
	CHECK(rcpt_error(" TO:<x@example.com> NOTIFY=SUCCESS,", delivery()) ==
	      "501 5.5.4 invalid NOTIFY parameter \"SUCCESS,\"");
	CHECK(rcpt_error(" TO:<x@example.com> NOTIFY=NEVER NOTIFY=NEVER", delivery()) ==
	      "501 5.5.4 duplicate param \"NOTIFY\"");
	CHECK(rcpt_error(" TO:<x@example.com> ORCPT=x@example.com", delivery()) ==
	      "501 5.5.4 invalid ORCPT parameter \"x@example.com\"");
	CHECK(rcpt_error(" TO:<x@example.com> ORCPT=rfc822;a+0D+0AX-Evil:+20yes", delivery()) ==
	      "501 5.5.4 invalid ORCPT parameter \"rfc822;a+0D+0AX-Evil:+20yes\"");
	CHECK(rcpt_error(" TO:<x@example.com> ORCPT=rfc822;a ORCPT=rfc822;b", delivery()) ==
	      "501 5.5.4 duplicate param \"ORCPT\"");
	CHECK(rcpt_error(" TO:<x@example.com> NOTIFY", delivery()) == "501 5.5.2 bad syntax: expected \"=\"");

	// RFC 6533 4: utf-8-addr-xtext always, utf-8-addr-unitext with SMTPUTF8.
	r = value_of(parse_rcpt(" TO:<x@example.com> ORCPT=utf-8;j\\x{F6}rg@example.com", delivery()));
	REQUIRE(r.orcpt);
	CHECK(r.orcpt->type == "utf-8");
	CHECK(r.orcpt->address == "jörg@example.com");
	r = value_of(parse_rcpt(" TO:<x@example.com> ORCPT=utf-8;jörg@example.com", with_smtputf8(delivery())));
	CHECK(r.orcpt->address == "jörg@example.com");
	CHECK(rcpt_error(" TO:<x@example.com> ORCPT=utf-8;jörg@example.com", delivery()).starts_with("501 5.5.2"));
}

// Every refusal of the parser, reached once through each step that can
// report it, with its exact reply: a change in how an error travels up the
// recursive descent must not change a byte of what the client reads.
TEST_CASE("parser refusals through every step that can fail") {
	SUBCASE("address literal tag and body") {
		CHECK(rcpt_error(" TO:<x@[IPv6]>", submission()) == "501 5.5.2 bad syntax: expected \":\"");
		CHECK(rcpt_error(" TO:<x@[IPv6:]>", submission()) ==
		      "501 5.5.2 bad syntax: expected at least one char for address literal");
		CHECK(hello_error(" [IPv6:", true, authenticated()) ==
		      "501 5.5.2 bad syntax: need at least one char for address literal (remaining \"\")");
		CHECK(hello_error(" [IPv6:192.0.2.1] rest", true, authenticated()) ==
		      "501 5.5.2 bad syntax: ip address is not ipv6 (remaining \" rest\")");
	}
	SUBCASE("source route domains") {
		CHECK(rcpt_error(" TO:<@-relay.example:user@final.example>", submission()) ==
		      "501 5.5.2 bad syntax: expected at least one char for subdomain");
		CHECK(
		    rcpt_error(" TO:<@relay.example,@:user@final.example>", authenticated()) ==
		    "501 5.5.2 bad syntax: expected at least one char for subdomain (remaining \":user@final.example>\")");
		CHECK(
		    mail_error(" FROM:<@relay..example:u@d.example>", authenticated()) ==
		    "501 5.5.2 bad syntax: expected at least one char for subdomain (remaining \".example:u@d.example\")");
	}
	SUBCASE("non-ASCII localparts: 550 for the sender, 553 for a recipient") {
		CHECK(mail_error(" FROM:<\"jö\"@example.com>", submission()) ==
		      "550 5.6.7 non-ascii address not permitted without smtputf8");
		CHECK(mail_error(" FROM:<a.jö@example.com>", delivery()) ==
		      "550 5.6.7 non-ascii address not permitted without smtputf8");
		CHECK(rcpt_error(" TO:<ö@example.com>", delivery()) ==
		      "553 5.6.7 non-ascii address not permitted without smtputf8");
		CHECK(rcpt_error(" TO:<a.ö@example.com>", delivery()) ==
		      "553 5.6.7 non-ascii address not permitted without smtputf8");
	}
	SUBCASE("a domain that IDNA mapping empties, in a path") {
		CHECK(rcpt_error(" TO:<x@\xc2\xad>", with_smtputf8(submission())) ==
		      "501 5.5.2 bad syntax: parsing domain name \"\\u00ad\": to ascii: empty label after mapping");
	}
	SUBCASE("a domain that IDNA mapping gives a space, in a path") {
		CHECK(
		    rcpt_error(" TO:<x@a\xc2\xa0"
		               "b.example>",
		               with_smtputf8(submission())) ==
		    "501 5.5.2 bad syntax: parsing domain name \"a\\u00a0b.example\": to ascii: character not allowed in "
		    "a host name after mapping");
	}
	SUBCASE("MAIL parameters without their value") {
		for (std::string keyword : {"BODY", "AUTH", "RET", "ENVID"})
			CHECK(mail_error(" FROM:<a@b.example> " + keyword, submission()) ==
			      "501 5.5.2 bad syntax: expected \"=\"");
		CHECK(mail_error(" FROM:<a@b.example> RET=", submission()) ==
		      "501 5.5.2 bad syntax: need at least one char for parameter value");
		CHECK(mail_error(" FROM:<a@b.example> ENVID= SIZE=1", authenticated()) ==
		      "501 5.5.2 bad syntax: expected at least one char for parameter value (remaining \" SIZE=1\")");
		CHECK(mail_error(" FROM:<a@b.example> AUTH=\x01", authenticated()) ==
		      "501 5.5.2 bad syntax: parsing xtext: invalid character \"\\x01\" (remaining \"\\x01\")");
		// The first error wins: a parameter error stops the parse before the next one.
		CHECK(mail_error(" FROM:<a@b.example> FOO SIZE=x", submission()) ==
		      "555 5.3.3 unrecognized parameter \"FOO\"");
		CHECK(mail_error(" FROM:<a@b.example> SIZE=x FOO", submission()) ==
		      "501 5.5.2 bad syntax: expected at least one char for number");
	}
	SUBCASE("RCPT parameters and the postmaster form") {
		CHECK(rcpt_error(" TO:<x@example.com> NOTIFY=", submission()) ==
		      "501 5.5.2 bad syntax: need at least one char for parameter value");
		CHECK(rcpt_error(" TO:<x@example.com> ORCPT", authenticated()) ==
		      "501 5.5.2 bad syntax: expected \"=\" (remaining \"\")");
		CHECK(rcpt_error(" TO:<x@example.com> -X", submission()) ==
		      "501 5.5.2 bad syntax: expected at least one char for parameter keyword");
		CHECK(rcpt_error(" TO:<POSTMASTER>x", delivery()) ==
		      "501 5.5.2 bad syntax: trailing data, not white space: \"x\"");
		CHECK(rcpt_error(" TO:<POSTMASTER> FOO=1", delivery()) == "555 5.3.3 unrecognized parameter \"FOO\"");
		CHECK(rcpt_error(" TO:<postmaster> NOTIFY=NEVER notify=NEVER", delivery()) ==
		      "501 5.5.4 duplicate param \"notify\"");
	}
	SUBCASE("quoted strings of VRFY and NOOP") {
		CHECK(reply_of(error_of(parse_vrfy(" \"abc", delivery()))) ==
		      "501 5.5.2 bad syntax: need another character");
		CHECK(reply_of(error_of(parse_vrfy(" \"jö\"", delivery()))) ==
		      "501 5.5.2 bad syntax: invalid localpart, invalid character ö");
		CHECK(value_of(parse_vrfy(" \"jö\"", with_smtputf8(delivery()))) == "jö");
		CHECK(reply_of(error_of(parse_vrfy(" @", delivery()))) ==
		      "501 5.5.2 bad syntax: expected at least one char for atom");
		CHECK(reply_of(error_of(parse_noop(" \"x", delivery()))) ==
		      "501 5.5.2 bad syntax: need another character");
		CHECK(reply_of(error_of(parse_noop(" ", authenticated()))) ==
		      "501 5.5.2 bad syntax: need at least one char for atom (remaining \"\")");
	}
	SUBCASE("HELO names") {
		CHECK(hello_error(" a..example", false, authenticated()) ==
		      "501 5.5.2 bad syntax: expected at least one char for subdomain (remaining \".example\")");
		CHECK(hello_error(" " + std::string(256, 'a'), false, submission()) ==
		      "501 5.5.2 bad syntax: domain longer than 255 octets");
		CHECK(hello_error(" xn--zz", false, submission())
		          .starts_with("501 5.5.2 bad syntax: parsing domain name \"xn--zz\": to ascii: "));
	}
}
