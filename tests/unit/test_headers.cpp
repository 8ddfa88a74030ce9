// Header builders: date format, folding, Received, Return-Path.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "message/header_scan.h"
#include "message/headers.h"

using namespace tern::message;

namespace {
// Go's reference time: Mon Jan 2 15:04:05 MST 2006 (-0700).
constexpr std::time_t go_reference = 1136239445;
}  // namespace

TEST_CASE("headers: format_date") {
	CHECK(format_date(go_reference, -7 * 3600) == "2 Jan 2006 15:04:05 -0700");
	CHECK(format_date(go_reference) == "2 Jan 2006 22:04:05 +0000");
	CHECK(format_date(go_reference, 5 * 3600 + 1800) == "3 Jan 2006 03:34:05 +0530");
	CHECK(format_date(go_reference, -(3 * 3600 + 1800)) == "2 Jan 2006 18:34:05 -0330");
	CHECK(format_date(0) == "1 Jan 1970 00:00:00 +0000");
	// 2026-11-25T07:02:09Z: two-digit day, zero-padded time, month name.
	CHECK(format_date(1795590129) == "25 Nov 2026 07:02:09 +0000");
	CHECK(format_date(1795590129, 3600) == "25 Nov 2026 08:02:09 +0100");
	// A year before 1000 keeps four digits.
	CHECK(format_date(-30000000000) == "4 May 1019 18:40:00 +0000");
}

TEST_CASE("headers: format_date agrees with strftime over many dates and offsets") {
	// The C library in the C locale, for a date every 7777777 s from 1970
	// to 2100, with offsets either side of UTC.
	for (std::time_t t = 0; t < 4102444800; t += 7777777) {
		for (int offset : {0, 3600, -7 * 3600, 5 * 3600 + 1800, -(9 * 3600 + 2700), 14 * 3600}) {
			std::time_t shifted = t + offset;
			std::tm tm{};
			REQUIRE(gmtime_r(&shifted, &tm));
			char date[64];
			REQUIRE(std::strftime(date, sizeof date, "%b %Y %H:%M:%S", &tm) > 0);
			int minutes = std::abs(offset) / 60;
			char zone[16];
			std::snprintf(zone, sizeof zone, "%c%02d%02d", offset < 0 ? '-' : '+', minutes / 60,
			              minutes % 60);
			std::string expected = std::to_string(tm.tm_mday) + " " + date + " " + zone;
			CHECK(format_date(t, offset) == expected);
		}
	}
}

TEST_CASE("headers: HeaderBuilder separators and folding") {
	HeaderBuilder h("X-Test");
	h.add("a");
	h.add("b");
	CHECK(h.finish() == "X-Test: a b\r\n");

	// Fold exactly when the line would exceed 78 characters.
	HeaderBuilder f("X");         // "X:" = 2
	f.add(std::string(75, 'a'));  // 2 + 1 + 75 = 78: fits
	f.add("b");                   // 80 > 78: fold, TAB replaces the space
	f.add("c");
	CHECK(f.finish() == "X: " + std::string(75, 'a') + "\r\n\tb c\r\n");

	// An item longer than a line gets its own line and is not split.
	HeaderBuilder l("X");
	l.add("short");
	l.add(std::string(100, 'z'));
	l.add("next");
	CHECK(l.finish() == "X: short\r\n\t" + std::string(100, 'z') + "\r\n\tnext\r\n");

	HeaderBuilder r("Authentication-Results");
	r.add("host.example;");
	r.newline();
	r.add_raw("auth=pass");
	r.add("smtp.mailfrom=a@b");
	CHECK(r.finish() == "Authentication-Results: host.example;\r\n\tauth=pass smtp.mailfrom=a@b\r\n");
}

TEST_CASE("headers: build_received on delivery with TLS, folded like the model") {
	ReceivedInfo info;
	info.from = "mail.example.org";
	info.from_comment = "(mx.example.org [192.0.2.1])";
	info.by = "tern.example.com";
	info.by_comment = "([198.51.100.2])";
	info.with = "ESMTPS";
	info.id = "AAAAAAAAAAAAAAAAAAAAAA";
	info.tls_comment = "(TLS1.3 TLS_AES_128_GCM_SHA256)";
	info.for_rcpt = "bob@example.com";
	info.when = go_reference;
	info.tz_offset_s = -7 * 3600;
	CHECK(build_received(info) ==
	      "Received: from mail.example.org (mx.example.org [192.0.2.1]) by\r\n"
	      "\ttern.example.com ([198.51.100.2]) via tcp with ESMTPS id\r\n"
	      "\tAAAAAAAAAAAAAAAAAAAAAA (TLS1.3 TLS_AES_128_GCM_SHA256) for <bob@example.com>;\r\n"
	      "\t2 Jan 2006 15:04:05 -0700\r\n");
}

TEST_CASE("headers: build_received on submission without comments") {
	ReceivedInfo info;
	info.from = "tern.example";
	info.by = "tern.example";
	info.by_comment = "([127.0.0.1])";
	info.with = "ESMTPA";
	info.id = "0123456789abcdefghij-_";
	info.for_rcpt = "x@y.example";
	info.when = go_reference;
	CHECK(build_received(info) ==
	      "Received: from tern.example by tern.example ([127.0.0.1]) via tcp with ESMTPA\r\n"
	      "\tid 0123456789abcdefghij-_ for <x@y.example>; 2 Jan 2006 22:04:05 +0000\r\n");
}

TEST_CASE("headers: build_return_path") {
	CHECK(build_return_path("a@b.example") == "Return-Path: <a@b.example>\r\n");
	CHECK(build_return_path("") == "Return-Path: <>\r\n");
}

TEST_CASE("headers: received_with (RFC 3848)") {
	CHECK(received_with(false, false, false, false) == "SMTP");
	CHECK(received_with(true, false, false, false) == "ESMTP");
	CHECK(received_with(true, false, true, false) == "ESMTPS");
	CHECK(received_with(true, false, false, true) == "ESMTPA");
	CHECK(received_with(true, false, true, true) == "ESMTPSA");
	CHECK(received_with(true, true, false, false) == "UTF8SMTP");
	CHECK(received_with(true, true, true, true) == "UTF8SMTPSA");
	CHECK(received_with(false, false, true, false) == "SMTPS");
}

TEST_CASE("headers: local_utc_offset is whole minutes") {
	int off = local_utc_offset(go_reference);
	CHECK(off % 60 == 0);
	CHECK(off >= -14 * 3600);
	CHECK(off <= 14 * 3600);
}

TEST_CASE("HeaderScan: the header section up to its empty line, from pieces of any size") {
	const std::string message = "From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n";
	const std::string header = "From: a@b.example\r\nSubject: x\r\n\r\n";
	for (size_t split = 0; split <= message.size(); ++split) {
		tern::message::HeaderScan scan;
		bool done = scan.add(std::string_view(message).substr(0, split));
		if (!done) done = scan.add(std::string_view(message).substr(split));
		CAPTURE(split);
		CHECK(done);
		CHECK(scan.take() == header);
	}
	SUBCASE("bytes that end inside the header are all header") {
		tern::message::HeaderScan scan;
		CHECK_FALSE(scan.add("From: a@b.example\r\nSubj"));
		CHECK(scan.take() == "From: a@b.example\r\nSubj");
	}
	SUBCASE("a message that starts with the empty line has an empty header") {
		tern::message::HeaderScan scan;
		CHECK(scan.add("\r\nbody"));
		CHECK(scan.take() == "\r\n");
	}
	SUBCASE("a header that passes the limit without its empty line gives no answer") {
		tern::message::HeaderScan scan(64);
		CHECK(scan.add("X-Long: " + std::string(100, 'x') + "\r\n"));
		CHECK(scan.take() == std::nullopt);
	}
}
