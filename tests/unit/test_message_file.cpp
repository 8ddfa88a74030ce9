// Reading a received message back (server/message_file.h): the one-pass
// read the inbound analysis uses hands over every byte in order and finds
// the same header section as read_header.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "files.h"
#include "server/inbound.h"
#include "message/header_parse.h"
#include "message/header_scan.h"
#include "server/message_file.h"

using tern::server::MessageFile;

namespace {

// Returns the header for further checks.
std::optional<std::string> check_one_pass(const std::string& text) {
	tern::testing::TempDir dir;
	std::string path = dir.path + "/message";
	tern::testing::write_file(path, text);
	MessageFile file(path);
	REQUIRE(file.ok());
	std::string seen;
	int64_t size = -1;
	auto header = file.read_whole([&](std::string_view chunk) { seen.append(chunk); }, size);
	CHECK(seen == text);
	CHECK(size == static_cast<int64_t>(text.size()));
	CHECK(header == file.read_header());
	return header;
}

std::string header_of(size_t bytes) {
	std::string h;
	while (h.size() < bytes) h += "X-Filler: " + std::string(60, 'f') + "\r\n";
	return h;
}

// A spool file as the session leaves it: created at `path`, `text`
// appended, the session's descriptor still open.
tern::UniqueFd session_spool_file(const std::string& path, const std::string& text) {
	tern::UniqueFd fd(::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	REQUIRE(fd);
	REQUIRE(::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()));
	return fd;
}

}  // namespace

TEST_CASE("message file: one pass gives every byte and read_header's header") {
	const std::string body = "body line\r\n" + std::string(200000, 'b') + "\r\n";
	SUBCASE("small header") {
		CHECK(check_one_pass("From: a@example.org\r\nSubject: x\r\n\r\n" + body) ==
		      "From: a@example.org\r\nSubject: x\r\n\r\n");
	}
	SUBCASE("empty header") { CHECK(check_one_pass("\r\n" + body) == "\r\n"); }
	SUBCASE("no empty line: the whole file is header") { check_one_pass("From: a@example.org\r\nSubject: x"); }
	SUBCASE("empty file") { check_one_pass(""); }
	SUBCASE("header across the 16 KB and 64 KB read sizes") {
		for (size_t around : {16384, 65536})
			for (size_t shift = 0; shift < 5; ++shift) {
				// The header ends at around-1+shift: its empty line's CRLF
				// CRLF straddles the read boundary.
				std::string h = header_of(around - 300);
				h += "X-Pad: " + std::string(around - 1 + shift - h.size() - 9, 'p') + "\r\n";
				REQUIRE(h.size() == around - 1 + shift);
				auto header = check_one_pass(h + "\r\n" + body);
				CHECK(header == h + "\r\n");
			}
	}
	SUBCASE("a header over 1 MiB is refused by both") {
		CHECK_FALSE(check_one_pass(header_of(1100 * 1024) + "\r\n" + body));
	}
}

TEST_CASE("message file: a file that did not open reads as nothing") {
	MessageFile file("/nonexistent/message");
	int64_t size = -1;
	bool called = false;
	auto header = file.read_whole([&](std::string_view) { called = true; }, size);
	CHECK_FALSE(header);
	CHECK(size == 0);
	CHECK_FALSE(called);
}

// The worker reads a spool file through a duplicate of the session's
// descriptor (server/inbound.h InboundAnalysis::spool_fd), not by its path:
// with the path gone, the message is still read whole, and the session's
// own descriptor stays open after the worker closed its duplicate.
TEST_CASE("inbound read: through the duplicate descriptor it is given, not the path") {
	tern::testing::TempDir dir;
	std::string path = dir.path + "/data-spool-1";
	const std::string text =
	    "From: Someone <someone@sender.example>\r\nMessage-ID: <m1@sender.example>\r\n"
	    "Received: from a\r\n\r\nbody\r\n";
	tern::UniqueFd session_fd = session_spool_file(path, text);

	tern::server::InboundAnalysis by_path;
	by_path.path = path;
	tern::server::read_inbound_message(by_path);
	REQUIRE(by_path.header_ok);

	REQUIRE(::unlink(path.c_str()) == 0);
	tern::server::InboundAnalysis by_fd;
	by_fd.path = path;
	by_fd.spool_fd.reset(::fcntl(session_fd.get(), F_DUPFD_CLOEXEC, 0));
	REQUIRE(by_fd.spool_fd);
	tern::server::read_inbound_message(by_fd);
	CHECK(by_fd.header_ok);
	CHECK_FALSE(by_fd.spool_fd);  // taken and closed by the read
	CHECK(by_fd.size == static_cast<int64_t>(text.size()));
	CHECK(by_fd.sha256 == by_path.sha256);
	CHECK(by_fd.from_domain == "sender.example");
	CHECK(by_fd.message_id == "<m1@sender.example>");
	CHECK(by_fd.received_headers == 1);

	char first = 0;
	CHECK(::pread(session_fd.get(), &first, 1, 0) == 1);
	CHECK(first == 'F');

	tern::server::InboundAnalysis gone;
	gone.path = path;
	tern::server::read_inbound_message(gone);
	CHECK_FALSE(gone.header_ok);
}

// The header section the session parses while DATA streams in gives the
// analysis what the worker's read of the file gives (doc/design.md "Early
// lookups"). An unsigned message then needs no body hash, and the accounts'
// worker step hashes it through the descriptor it is given; a signed one
// has its bodies hashed on their own, as the whole read hashes them.
TEST_CASE("inbound header facts: parsed while DATA streamed in, as read from the file") {
	const std::string header =
	    "From: Someone <someone@sender.example>\r\nMessage-ID: <m1@sender.example>\r\n"
	    "Received: from a\r\nReceived: from b\r\n";
	// A well-formed signature: verification needs its body hashed.
	const std::string signature =
	    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=sender.example; s=sel;\r\n"
	    " h=from:subject:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n";
	for (bool is_signed : {false, true}) {
		CAPTURE(is_signed);
		const std::string text = (is_signed ? signature : "") + header + "\r\nbody\r\nmore body\r\n";
		tern::testing::TempDir dir;
		std::string path = dir.path + "/data-spool-1";
		tern::UniqueFd session_fd = session_spool_file(path, text);

		tern::server::InboundAnalysis read;
		read.path = path;
		tern::server::read_inbound_message(read);
		REQUIRE(read.header_ok);

		tern::message::HeaderScan scan;
		CHECK(scan.add(text));
		std::optional<std::string> streamed = scan.take();
		REQUIRE(streamed);
		auto section = tern::message::parse_header_section(*streamed);
		REQUIRE(section);
		tern::server::InboundAnalysis taken;
		taken.path = path;
		taken.spool_fd.reset(::fcntl(session_fd.get(), F_DUPFD_CLOEXEC, 0));
		tern::server::take_header_facts(taken, std::move(*section));
		CHECK(taken.header_ok);
		CHECK(taken.from_domain == "sender.example");
		CHECK(taken.from_localpart == read.from_localpart);
		CHECK(taken.message_id == "<m1@sender.example>");
		CHECK(taken.received_headers == 2);
		CHECK(taken.body_offset == read.body_offset);
		CHECK(taken.fields.size() == read.fields.size());
		CHECK(taken.pending.size() == read.pending.size());
		CHECK(taken.sha256.empty());  // the file is not read yet
		CHECK(tern::server::needs_body_hashes(taken) == is_signed);

		REQUIRE(::unlink(path.c_str()) == 0);  // read through the descriptor from here on
		if (is_signed) {
			tern::server::hash_inbound_bodies(taken);
			REQUIRE(taken.body_hashes.size() == 1);
			REQUIRE(taken.body_hashes[0]);
			CHECK(taken.body_hashes == read.body_hashes);
		} else {
			tern::server::hash_inbound_message(taken);
		}
		CHECK_FALSE(taken.spool_fd);  // taken and closed by the worker step
		CHECK(taken.size == static_cast<int64_t>(text.size()));
		CHECK(taken.sha256 == read.sha256);
	}
}
