// Plain ASCII domains skip libidn2 (smtp/parser.cpp): their A-label and
// U-label forms must be exactly what libidn2 gives, and A-labels, long
// labels and non-ASCII names still go through it.
#include <doctest/doctest.h>
#include <idn2.h>

#include <initializer_list>
#include <optional>
#include <string>

#include "smtp/parser.h"

using tern::smtp::Domain;
using tern::smtp::parse_domain;

namespace {

// What libidn2 makes of `name`, with the flags of the parser.
std::optional<Domain> through_libidn2(const std::string& name) {
	char* ascii = nullptr;
	if (idn2_lookup_u8(reinterpret_cast<const uint8_t*>(name.c_str()), reinterpret_cast<uint8_t**>(&ascii),
	                   IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK)
		return std::nullopt;
	Domain d;
	for (char* p = ascii; *p; ++p) d.ascii += char(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
	idn2_free(ascii);
	char* unicode = nullptr;
	if (idn2_to_unicode_8z8z(d.ascii.c_str(), &unicode, 0) != IDN2_OK) return std::nullopt;
	d.unicode = unicode;
	idn2_free(unicode);
	return d;
}

}  // namespace

TEST_CASE("plain ASCII domains get libidn2's forms without it") {
	const std::string label63(63, 'a');
	for (const std::string& name : std::initializer_list<std::string>{
		 "Example.COM", "client.sender.example", "a--b.example", "abc--d.example", "MAIL1.Sub-Domain.Example",
		 "x", "localhost", "1.2.3.example", label63 + ".example", "xnx--a.example", "XN-A.example"}) {
		CAPTURE(name);
		auto ours = parse_domain(name);
		auto theirs = through_libidn2(name);
		REQUIRE(ours);
		REQUIRE(theirs);
		CHECK(*ours == *theirs);
	}
}

TEST_CASE("A-labels, long labels and U-labels still go through libidn2") {
	// A valid A-label gets its U-label form; a broken one is refused.
	auto d = parse_domain("XN--BCHER-KVA.example");
	REQUIRE(d);
	CHECK(d->ascii == "xn--bcher-kva.example");
	CHECK(d->unicode ==
	      "b\xc3\xbc"
	      "cher.example");
	CHECK_FALSE(parse_domain("xn--zz-zzz.example"));
	// Hyphens where UTS #46 CheckHyphens refuses them.
	CHECK_FALSE(parse_domain("ab--cd.example"));
	CHECK_FALSE(parse_domain("ab-.example"));
	// A 64-octet label is over the DNS's limit.
	CHECK_FALSE(parse_domain(std::string(64, 'a') + ".example"));
	CHECK(parse_domain("Bücher.Example")->ascii == "xn--bcher-kva.example");
}
