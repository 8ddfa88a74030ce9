// Mailbox names: which a folder can carry, and RFC 3501 5.1.3's modified
// UTF-7, checked against the examples of that section and names as
// Dovecot writes them.
#include <doctest/doctest.h>

#include "util/mailbox_name.h"

using tern::mailbox_from_utf7;
using tern::mailbox_to_utf7;
using tern::valid_mailbox_name;

TEST_CASE("mailbox name: the names a folder can carry") {
	CHECK(valid_mailbox_name("Junk"));
	CHECK(valid_mailbox_name("a.b"));
	CHECK(valid_mailbox_name("R&D"));
	CHECK(valid_mailbox_name("\xc3\x89t\xc3\xa9"));
	CHECK_FALSE(valid_mailbox_name(""));
	CHECK_FALSE(valid_mailbox_name("."));
	CHECK_FALSE(valid_mailbox_name(".."));
	CHECK_FALSE(valid_mailbox_name("a/b"));
	CHECK_FALSE(valid_mailbox_name("a\tb"));
	CHECK_FALSE(valid_mailbox_name(std::string("a\0b", 3)));
	CHECK_FALSE(valid_mailbox_name("a\x7f"));
}

TEST_CASE("mailbox name: modified UTF-7 of RFC 3501 5.1.3") {
	// The RFC's example: "~peter/mail/日本語/台北" in its parts.
	CHECK(mailbox_to_utf7("~peter") == "~peter");
	CHECK(mailbox_to_utf7("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e") == "&ZeVnLIqe-");
	CHECK(mailbox_to_utf7("\xe5\x8f\xb0\xe5\x8c\x97") == "&U,BTFw-");
	CHECK(mailbox_to_utf7("&") == "&-");
	CHECK(mailbox_to_utf7("R&D") == "R&-D");
	CHECK(mailbox_to_utf7("\xc3\x89t\xc3\xa9") == "&AMk-t&AOk-");  // as Dovecot names "Été"
	CHECK(mailbox_to_utf7("Ind\xc3\xa9sirables") == "Ind&AOk-sirables");
	// Beyond the BMP: a surrogate pair (U+1F4E7).
	CHECK(mailbox_to_utf7("\xf0\x9f\x93\xa7") == "&2D3c5w-");
	// Control characters are shifted too; bad UTF-8 becomes U+FFFD.
	CHECK(mailbox_to_utf7("a\x7f") == "a&AH8-");
	CHECK(mailbox_to_utf7("\xff") == "&,,0-");

	for (std::string name : {"~peter", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "R&D", "\xc3\x89t\xc3\xa9",
	                         "\xf0\x9f\x93\xa7 mail", "a&b&c", ""}) {
		CAPTURE(name);
		CHECK(mailbox_from_utf7(mailbox_to_utf7(name)) == name);
	}
}

TEST_CASE("mailbox name: text that is not modified UTF-7") {
	CHECK(mailbox_from_utf7("&U,BTFw-") == std::string("\xe5\x8f\xb0\xe5\x8c\x97"));
	CHECK_FALSE(mailbox_from_utf7("a&b"));                // no "-"
	CHECK_FALSE(mailbox_from_utf7("&U/BTFw-"));           // "/" is "," here
	CHECK_FALSE(mailbox_from_utf7("&AGE-"));              // printable "a" shifted
	CHECK_FALSE(mailbox_from_utf7("&2D0-"));              // an unpaired high surrogate
	CHECK_FALSE(mailbox_from_utf7("&AMl-"));              // non-zero padding bits
	CHECK_FALSE(mailbox_from_utf7("\xc3\x89t\xc3\xa9"));  // raw 8-bit
}
