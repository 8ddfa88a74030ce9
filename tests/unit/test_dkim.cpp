// DKIM: parsing, canonicalization, verification and signing (RFC 6376,
// RFC 8463). Vectors: RFC 6376 3.4.5, RFC 8463 Appendix A, and signatures
// made by python3-dkim at development time.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>

#include "mailauth/dkim.h"
#include "mailauth/dkim_internal.h"
#include "util/base64.h"

using namespace tern::mailauth;
using namespace tern::mailauth::dkim;
namespace message = tern::message;

namespace {

// RFC 8463 Appendix A: one message, an Ed25519 and an RSA signature.
const std::string rfc8463_message =
    "DKIM-Signature: v=1; a=ed25519-sha256; c=simple/simple; \r\n"
    " d=football.example.com; i=@football.example.com; \r\n"
    " q=dns/txt; s=brisbane; t=1518460054; h=from : to : \r\n"
    " subject : date : message-id : from : subject : date; \r\n"
    " bh=4bLNXImK9drULnmePzZNEBleUanJCX5PIsDIFoH4KTQ=; \r\n"
    " b=9/dsDChY0YMTtD5Eyw3wx7x22BlSJP7M5ECbJ7GWrR45nXlTCGb8l0YB\r\n"
    " o0wBLR++X5LqmsxXaOYLLJe46l10AQ==\r\n"
    "DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; \r\n"
    " d=football.example.com; i=@football.example.com; \r\n"
    " q=dns/txt; s=test; t=1527915362; h=from : to : subject : \r\n"
    " date : message-id : from : subject : date; \r\n"
    " bh=4bLNXImK9drULnmePzZNEBleUanJCX5PIsDIFoH4KTQ=; \r\n"
    " b=icKcLSEZYXJ95flvWE8FT6hl5iqd8MC/LEKYH0QjsqYy6MO/4pgVNCZH\r\n"
    " l/RAXAuADxE/40Fg7uTlxwwD1hjN2Ple6J//cJfslBdDOq6zTVbne1dqtl\r\n"
    " NOat7iamJ1AfRqyG+ja7a2AZsrpUuJ7VA6O+0zRYPqpwMEkEFIzI9i/Xk=\r\n"
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    "\r\n"
    "Hi.\r\n"
    "\r\n"
    "We lost the game.  Are you hungry yet?\r\n"
    "\r\n"
    "Joe.\r\n"
    "\r\n";

const std::string rfc8463_ed25519_record = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
// RFC 8463 A.2: the 1024-bit RSA key (also used for the python vectors).
const std::string rfc8463_rsa_record =
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB";

// RFC 8463 A.1 private keys: the RSA key as PKCS#1, the Ed25519 seed
// "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=" wrapped as PKCS#8.
const std::string rfc8463_rsa_pem =
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi\n"
    "Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM\n"
    "KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB\n"
    "AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm\n"
    "6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe\n"
    "zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy\n"
    "6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc\n"
    "uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy\n"
    "WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd\n"
    "WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a\n"
    "licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst\n"
    "o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe\n"
    "uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL\n"
    "-----END RSA PRIVATE KEY-----\n";
const std::string rfc8463_ed25519_pem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n";

// Signed by python3-dkim (dkimpy 1.1.4) at development time.
const std::string py_message =
    "From: Alice <alice@example.org>\r\n"
    "To: Bob <bob@example.net>\r\n"
    "Subject: Test  message\r\n"
    "Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
    "Message-Id: <abc@example.org>\r\n"
    "\r\n"
    "Hello  Bob,\t \r\n"
    "\r\n"
    "bye.\r\n"
    "\r\n";
const std::string py_rsa_relaxed =
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org;\r\n"
    " i=@example.org; q=dns/txt; s=py; t=1795628455; h=from : to : subject :\r\n"
    " date : message-id; bh=8JaQO8GKVE7TmGUGatr6iOYwlGyY/Go8Hbi5f8YUVDM=;\r\n"
    " b=W1zDy6SsAfelX0+txbNrxQCRqX+ok7Wuh2bVAkTUBoZDWCpS+KGp0aIBbj5ObQCn/glX+\r\n"
    " KCPSEOO5QuGD/6lB03S+4fIlZn8Wb5d4xbRJ627nTJkWcz3jzchfV5YATRgmGvJAte8TOBw\r\n"
    " cfO/gdRcgKy4jeiPdtjktIgmKWJo5JA=\r\n";
const std::string py_rsa_simple =
    "DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=example.org;\r\n"
    " i=@example.org; q=dns/txt; s=py; t=1795628455; h=from : to : subject :\r\n"
    " date : message-id; bh=yB2Ko1oHKL8054cc21ecE/Dwz76WYbLsQD4spEc/9Q8=;\r\n"
    " b=gzHNmv1QqAmJk1cHhnlMwxRkkyrtLDqh0VAg631dQIRBtKzcl0EYDYgVqricI4zPRsGky\r\n"
    " FEkG2Z+Y+OJjHesh0gCDOiffdwiO4zxcr0R/LnKmc1qN4wcydNjOOCUtMlG5exsG7p00a2H\r\n"
    " JBboOMy07PyV09Apl68KOacu7bMoBu0=\r\n";
const std::string py_rsa_sha1 =
    "DKIM-Signature: v=1; a=rsa-sha1; c=relaxed/simple; d=example.org;\r\n"
    " i=@example.org; q=dns/txt; s=py; t=1795628455; h=from : to : subject :\r\n"
    " date : message-id; bh=v72JtNBwx8fVa5/GV/R5+T2OonI=;\r\n"
    " b=zRQdbmASO1co7wAKDYfp+ba7UsOCyDlkYSsipJyK2JSlFilgFJB7O7YAbQBrVFmhJSMOH\r\n"
    " YNCrUP6Pq8iuTNCwa4YZ/PPUL9ZtQvKRXAOMo8A8T5CiwzcWkAFcMXjT0Sin4jSSbkTCMFw\r\n"
    " 1NO6KX1XucgNQiezmawqwCvQri9PiSA=\r\n";
const std::string py_rsa_length =
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org;\r\n"
    " i=@example.org; l=20; q=dns/txt; s=py; t=1795628455; h=from : to :\r\n"
    " subject : date : message-id;\r\n"
    " bh=8JaQO8GKVE7TmGUGatr6iOYwlGyY/Go8Hbi5f8YUVDM=;\r\n"
    " b=PKfhJRWr9lgjkrpaFIpDI6M0q+BWV+KQiJfDIwuk6u67BWHZ6GYlABV9gTIWKHhk0v2Mb\r\n"
    " qS+utBNb9bXMkzilYFrwNhXDOV0RJvMgq6q4vSHNPqCkzUo69sqw2pqusM7JcdXMIZzY7xI\r\n"
    " n1oIHzphxTXGg9mMEDERS2g9jqy+YOc=\r\n";
const std::string py_ed25519 =
    "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.org;\r\n"
    " i=@example.org; q=dns/txt; s=ed; t=1795628455; h=from : to : subject :\r\n"
    " date : message-id; bh=8JaQO8GKVE7TmGUGatr6iOYwlGyY/Go8Hbi5f8YUVDM=;\r\n"
    " b=Eu2VEarLOTgHMN9u2cvGURCFxSb9WqezJblq1wMP4id/GVLK5441uESi92nIIAC+kMtYm\r\n"
    " hrBOxoE3b14ZY/GDg==\r\n";

// A 512-bit RSA key and a signature with it (openssl + python3-dkim).
const std::string weak_signed =
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org;\r\n"
    " i=@example.org; q=dns/txt; s=weak; t=1795628548; h=from : to :\r\n"
    " subject; bh=8JaQO8GKVE7TmGUGatr6iOYwlGyY/Go8Hbi5f8YUVDM=;\r\n"
    " b=daEB2rnvQf4UNxH+4RZyPN/oy/0anMrRM+t0KSA44CKEL+/v9dywJ38NANanXqB38fE2U\r\n"
    " JwfGTt83FVYjVrLsw==\r\n";
const std::string weak_record =
    "v=DKIM1; k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAKZyqoIbStYIBa5Hekd5thRcU2gA3V7V1ATbQNWHFLTlLRmWx1F/SQpnalIbcUaGieG4fFiU638GQcYYSO3pvfcCAwEAAQ==";

// Our own Ed25519 signature of py_message with the RFC 8463 key at
// t=1764000000 (deterministic; verified by python3-dkim at development time).
const std::string ed25519_signed_header =
    "DKIM-Signature: v=1; d=example.org; s=ed; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
    "\tt=1764000000; h=From:To:Subject:Date:Message-Id:From:To:Subject:Date:\r\n"
    "\tMessage-Id; bh=8JaQO8GKVE7TmGUGatr6iOYwlGyY/Go8Hbi5f8YUVDM=; b=D1pDCAvc0pLwW2\r\n"
    "\tRLbpgi1+oG4bKULADKqQuR+qvzZr/BvsPlzAIrI0/OCy4t0SlJlWIIwAaVARTrk7q5c0fIAA==\r\n";

std::vector<Result> verify_sync(CannedResolver& dns, const std::string& message, VerifyOptions options = {}) {
	std::vector<Result> out;
	bool called = false;
	verify_message(
	    dns, 1, message,
	    [&](std::vector<Result> r) {
		    out = std::move(r);
		    called = true;
	    },
	    options);
	REQUIRE(called);
	return out;
}

CannedResolver python_dns() {
	CannedResolver dns;
	dns.set_records("py._domainkey.example.org", RrType::TXT, {rfc8463_rsa_record});
	dns.set_records("ed._domainkey.example.org", RrType::TXT, {rfc8463_ed25519_record});
	return dns;
}

std::string body_hash_b64(Canon canon, std::string_view body, std::optional<int64_t> l = std::nullopt) {
	BodyHasher h(canon, HashAlg::sha256, l);
	h.update(body);
	return tern::base64_encode(h.finish());
}

}  // namespace

TEST_CASE("header section parsing keeps raw bytes") {
	std::string msg = "A: X\r\nB : Y\t\r\n\tZ  \r\n\r\nbody\r\n";
	std::string err;
	auto s = message::parse_header_section(msg, &err);
	REQUIRE(s);
	REQUIRE(s->fields.size() == 2);
	CHECK(s->fields[0].raw == "A: X\r\n");
	CHECK(s->fields[1].name == "B");
	CHECK(s->fields[1].lower_name == "b");
	CHECK(s->fields[1].raw == "B : Y\t\r\n\tZ  \r\n");
	CHECK(s->fields[1].unfolded_value() == "Y\t\tZ");
	CHECK(s->body_offset == msg.size() - 6);
	CHECK(s->has_separator);

	CHECK_FALSE(message::parse_header_section(" x: y\r\n\r\n", &err));
	CHECK(err == "malformed message, starts with space/tab");
	CHECK_FALSE(message::parse_header_section("no colon\r\n\r\n", &err));
	CHECK(err == "malformed message, header without colon");
	auto empty = message::parse_header_section("\r\nbody");
	REQUIRE(empty);
	CHECK(empty->fields.empty());
	CHECK(empty->body_offset == 2);
}

TEST_CASE("header section parsing stops past max_header_fields") {
	// Each field costs about a hundred bytes of bookkeeping beside its text:
	// a section of 4-byte fields would take 25 times its size in memory
	// (doc/behaviour.md D19).
	std::string fields;
	for (size_t i = 0; i < message::max_header_fields; ++i) fields += "a:\r\n";
	auto full = message::parse_header_section(fields + "\r\nbody\r\n");
	REQUIRE(full);
	CHECK(full->fields.size() == message::max_header_fields);
	std::string err;
	CHECK_FALSE(message::parse_header_section(fields + "b:\r\n\r\nbody\r\n", &err));
	CHECK(err == "too many header fields");
	// Continuation lines are no new fields.
	CHECK(message::parse_header_section(fields + " more\r\n\r\n"));
}

TEST_CASE("RFC 6376 3.4.5 canonicalization examples") {
	std::string headers = "A: X\r\nB : Y\t\r\n\tZ  \r\n";
	auto s = message::parse_header_section(headers + "\r\n");
	REQUIRE(s);
	CHECK(relaxed_header(s->fields[0].raw) + "\r\n" + relaxed_header(s->fields[1].raw) + "\r\n" ==
	      "a:X\r\nb:Y Z\r\n");
	// header_hash_input with h=a:b, a signature field "DKIM-Signature: x"
	CHECK(header_hash_input(s->fields, {"A", "b"}, Canon::relaxed, "DKIM-Signature: b=") ==
	      "a:X\r\nb:Y Z\r\ndkim-signature:b=");
	CHECK(header_hash_input(s->fields, {"A", "b"}, Canon::simple, "DKIM-Signature: b=") ==
	      headers + "DKIM-Signature: b=");

	// RFC 6376 5.4.2: a repeated name takes instances from the bottom up;
	// one named more often than it occurs adds nothing for the extra.
	auto repeated = message::parse_header_section("X: 1\r\nA: X\r\nX: 2\r\nx: 3\r\n\r\n");
	REQUIRE(repeated);
	CHECK(header_hash_input(repeated->fields, {"x", "a", "X", "x", "X", "missing"}, Canon::relaxed, "s: b=") ==
	      "x:3\r\na:X\r\nx:2\r\nx:1\r\ns:b=");

	std::string body = " C \r\nD \t E\r\n\r\n\r\n";
	CHECK(canonicalize_body(Canon::relaxed, body) == " C\r\nD E\r\n");
	CHECK(canonicalize_body(Canon::simple, body) == " C \r\nD \t E\r\n");
}

TEST_CASE("body canonicalization edge cases") {
	CHECK(canonicalize_body(Canon::simple, "") == "\r\n");
	CHECK(canonicalize_body(Canon::relaxed, "") == "");
	CHECK(canonicalize_body(Canon::simple, "\r\n\r\n") == "\r\n");
	CHECK(canonicalize_body(Canon::relaxed, "\r\n \t\r\n") == "");
	CHECK(canonicalize_body(Canon::simple, "abc") == "abc\r\n");
	CHECK(canonicalize_body(Canon::relaxed, "abc  ") == "abc\r\n");
	CHECK(canonicalize_body(Canon::relaxed, "a\r\n\r\nb\r\n") == "a\r\n\r\nb\r\n");
	CHECK(canonicalize_body(Canon::simple, "a\rb\r") == "a\rb\r\r\n");
	CHECK(canonicalize_body(Canon::relaxed, "  x\ty  \r\n") == " x y\r\n");
}

TEST_CASE("empty body hashes") {
	CHECK(body_hash_b64(Canon::simple, "") == "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
	CHECK(body_hash_b64(Canon::relaxed, "") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	BodyHasher sha1(Canon::simple, HashAlg::sha1);
	CHECK(tern::base64_encode(sha1.finish()) == "uoq1oCgLlTqpdDX/iUbLy7J1Wic=");
}

TEST_CASE("body hasher is independent of chunking") {
	std::string body = "Hello  Bob,\t \r\n\r\nbye.\r\n\r\n \r\n";
	for (Canon canon : {Canon::simple, Canon::relaxed}) {
		std::string whole = body_hash_b64(canon, body);
		for (size_t split = 0; split <= body.size(); split++) {
			BodyHasher h(canon, HashAlg::sha256);
			h.update(body.substr(0, split));
			h.update(body.substr(split));
			CHECK(tern::base64_encode(h.finish()) == whole);
		}
		// One byte at a time.
		BodyHasher h(canon, HashAlg::sha256);
		for (char c : body) h.update(std::string_view(&c, 1));
		CHECK(tern::base64_encode(h.finish()) == whole);
	}
	// The python vector's body hashes.
	std::string pybody = "Hello  Bob,\t \r\n\r\nbye.\r\n\r\n";
	CHECK(body_hash_b64(Canon::relaxed, pybody) == "8JaQO8GKVE7TmGUGatr6iOYwlGyY/Go8Hbi5f8YUVDM=");
	CHECK(body_hash_b64(Canon::simple, pybody) == "yB2Ko1oHKL8054cc21ecE/Dwz76WYbLsQD4spEc/9Q8=");
}

TEST_CASE("l= limits the hashed canonical body") {
	// "Hello Bob,\r\n\r\nbye.\r\n" is 20 canonical bytes.
	std::string pybody = "Hello  Bob,\t \r\n\r\nbye.\r\n\r\n";
	CHECK(body_hash_b64(Canon::relaxed, pybody, 20) == "8JaQO8GKVE7TmGUGatr6iOYwlGyY/Go8Hbi5f8YUVDM=");
	CHECK(body_hash_b64(Canon::relaxed, pybody + "appended\r\n", 20) ==
	      "8JaQO8GKVE7TmGUGatr6iOYwlGyY/Go8Hbi5f8YUVDM=");
	CHECK(body_hash_b64(Canon::relaxed, "Hello", 3) == tern::base64_encode(digest(HashAlg::sha256, "Hel")));
	BodyHasher h(Canon::simple, HashAlg::sha256, 0);
	h.update("anything");
	CHECK(tern::base64_encode(h.finish()) == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
}

TEST_CASE("parse_signature") {
	auto p = parse_signature(
	    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=Example.ORG; s=S1;\r\n"
	    "\th=From : To:subject; i=alice@sub.example.org; l=100; q=dns/txt; t=1000; x=2000;\r\n"
	    "\tz=From:alice|To:bob; future=ignored;\r\n"
	    "\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVz\r\n\t dA==\r\n");
	REQUIRE(p.signature);
	const Signature& s = *p.signature;
	CHECK(s.algorithm() == "rsa-sha256");
	CHECK(s.domain == "example.org");
	CHECK(s.selector == "s1");
	CHECK(s.signed_headers == std::vector<std::string>{"From", "To", "subject"});
	CHECK(s.identity == "alice@sub.example.org");
	CHECK(s.length == 100);
	CHECK(s.sign_time == 1000);
	CHECK(s.expire_time == 2000);
	CHECK(s.copied_headers == std::vector<std::string>{"From:alice", "To:bob"});
	CHECK(s.signature == "test");
	CHECK(s.signature_base64 == "dGVzdA==");
	CHECK(s.b_prefix() == "dGVzdA==");
	CHECK(s.header_canon() == Canon::relaxed);
	CHECK(s.body_canon() == Canon::simple);
	CHECK(s.header_without_b ==
	      "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=Example.ORG; s=S1;\r\n"
	      "\th=From : To:subject; i=alice@sub.example.org; l=100; q=dns/txt; t=1000; x=2000;\r\n"
	      "\tz=From:alice|To:bob; future=ignored;\r\n"
	      "\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=");

	// b= in the middle: its value and surrounding FWS go, the ';' stays.
	auto mid = parse_signature(
	    "DKIM-Signature: v=1; b= dGVzdA== ; a=ed25519-sha256; d=x.org; s=a; h=from;"
	    " bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	REQUIRE(mid.signature);
	CHECK(
	    mid.signature->header_without_b ==
	    "DKIM-Signature: v=1; b=; a=ed25519-sha256; d=x.org; s=a; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	// c= with one word: that for the header, simple for the body.
	auto one = parse_signature(
	    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed; d=x.org; s=a; h=from;"
	    " bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdA==");
	REQUIRE(one.signature);
	CHECK(one.signature->header_canon() == Canon::relaxed);
	CHECK(one.signature->body_canon() == Canon::simple);
}

TEST_CASE("parse_signature errors") {
	const std::string bh = " bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;";
	auto missing = parse_signature("DKIM-Signature: v=1; a=rsa-sha256; d=x.org; s=a; h=from; b=dGVzdA==");
	CHECK(missing.code == SigError::missing_tag);
	CHECK(missing.error == "missing required tag: \"bh\"");
	auto dup = parse_signature("DKIM-Signature: v=1; a=rsa-sha256; d=x.org; d=y.org; s=a; h=from;" + bh +
	                           " b=dGVzdA==");
	CHECK(dup.code == SigError::duplicate_tag);
	CHECK(dup.error == "duplicate tag: \"d\"");
	auto version = parse_signature("DKIM-Signature: v=2; a=rsa-sha256; d=x.org; s=a; h=from;" + bh + " b=dGVzdA==");
	CHECK(version.code == SigError::unknown_version);
	auto size = parse_signature("DKIM-Signature: v=1; a=rsa-sha1; d=x.org; s=a; h=from;" + bh + " b=dGVzdA==");
	CHECK(size.code == SigError::bad_body_hash_size);
	CHECK(size.error == "bad body hash size given algorithm: got 32 bytes, must be 20 for sha1");
	auto times = parse_signature("DKIM-Signature: v=1; a=rsa-sha256; d=x.org; s=a; h=from; t=5; x=5;" + bh +
	                             " b=dGVzdA==");
	CHECK(times.code == SigError::timestamps);
	auto ident = parse_signature("DKIM-Signature: v=1; a=rsa-sha256; d=x.org; s=a; h=from; i=@evilx.org;" + bh +
	                             " b=dGVzdA==");
	CHECK(ident.code == SigError::identity_domain);
	auto syntax = parse_signature("DKIM-Signature: v=1; a=rsa-sha256;; d=x.org");
	CHECK(syntax.code == SigError::syntax);
	auto b64 = parse_signature("DKIM-Signature: v=1; a=rsa-sha256; d=x.org; s=a; h=from;" + bh + " b=!!!");
	CHECK(b64.code == SigError::syntax);
	CHECK(parse_signature("Subject: v=1").code == SigError::not_dkim_signature);
	// d= and s= beyond ASCII must be names IDNA takes, not raw bytes.
	for (std::string bad : {"s=\xff\xfe; d=x.org", "s=a; d=\xc3x.org", "s=a\xe2\x80\x8b-; d=x.org"}) {
		CAPTURE(bad);
		CHECK(parse_signature("DKIM-Signature: v=1; a=rsa-sha256; " + bad + "; h=from;" + bh + " b=dGVzdA==")
		          .code == SigError::syntax);
	}
}

TEST_CASE("dkim: a selector or domain beyond ASCII is looked up by its A-labels (RFC 8616 4)") {
	auto parsed = parse_signature(
	    "DKIM-Signature: v=1; a=rsa-sha256; d=b\xc3\xbc"
	    "cher.example; s=\xc3\xa9t\xc3\xa9; "
	    "h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdA==");
	REQUIRE_MESSAGE(parsed.signature, parsed.error);
	// Kept in that form: the lookup asks for it, DMARC aligns it with the
	// From domain's A-labels.
	CHECK(parsed.signature->selector == "xn--t-9fab");
	CHECK(parsed.signature->domain == "xn--bcher-kva.example");
	// i= in either form is under d=.
	auto with_identity = parse_signature(
	    "DKIM-Signature: v=1; a=rsa-sha256; d=b\xc3\xbc"
	    "cher.example; s=a; i=info@mail.B\xc3\x9c"
	    "CHER.example; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdA==");
	REQUIRE_MESSAGE(with_identity.signature, with_identity.error);
	CHECK(identity_domain(*with_identity.signature) == "mail.xn--bcher-kva.example");
	// ASCII names are only lower-cased, underscores included.
	auto ascii = parse_signature(
	    "DKIM-Signature: v=1; a=rsa-sha256; d=Example.COM; s=Sel_1; h=from; "
	    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdA==");
	REQUIRE_MESSAGE(ascii.signature, ascii.error);
	CHECK(ascii.signature->selector == "sel_1");
	CHECK(ascii.signature->domain == "example.com");
}

TEST_CASE("parse_key_record") {
	auto ed = parse_key_record(rfc8463_ed25519_record);
	REQUIRE(ed.key);
	CHECK(ed.key->key_type == "ed25519");
	CHECK(ed.key->public_key.size() == 32);
	CHECK_FALSE(ed.key->testing());

	auto rsa = parse_key_record("v=DKIM1; h=sha256:sha1; t=y:s; s=email; n=note;\r\n p=" +
	                            rfc8463_rsa_record.substr(rfc8463_rsa_record.find("p=") + 2));
	REQUIRE(rsa.key);
	CHECK(rsa.key->key_type == "rsa");
	CHECK(rsa.key->rsa_bits == 1024);
	CHECK(rsa.key->hashes == std::vector<std::string>{"sha256", "sha1"});
	CHECK(rsa.key->testing());
	CHECK(rsa.key->strict_identity());
	CHECK(rsa.key->service_allowed("email"));

	auto revoked = parse_key_record("v=DKIM1; p=");
	REQUIRE(revoked.key);
	CHECK(revoked.key->revoked());

	auto nop = parse_key_record("v=DKIM1; k=rsa");
	CHECK_FALSE(nop.key);
	CHECK(nop.is_dkim);
	CHECK(nop.error == "missing field: public key");
	auto badk = parse_key_record("v=DKIM1; k=dsa; p=AAAA");
	CHECK_FALSE(badk.key);
	CHECK(badk.error == "unknown algorithm: \"dsa\"");
	auto notfirst = parse_key_record("k=rsa; v=DKIM1; p=");
	CHECK_FALSE(notfirst.key);
	CHECK(notfirst.error == "first field must be version");
	auto badlen = parse_key_record("v=DKIM1; k=ed25519; p=AAAA");
	CHECK_FALSE(badlen.key);
	CHECK(badlen.error == "bad public key: got 3 bytes, need 32");
	auto garbage = parse_key_record("v=spf1 -all");
	CHECK_FALSE(garbage.key);
	CHECK_FALSE(garbage.is_dkim);
	auto badrsa = parse_key_record("v=DKIM1; p=AAAA");
	CHECK_FALSE(badrsa.key);
	CHECK(badrsa.error == "bad public key: not an RSA public key");
}

TEST_CASE("RFC 8463 Appendix A signatures verify") {
	CannedResolver dns;
	dns.set_records("brisbane._domainkey.football.example.com", RrType::TXT, {rfc8463_ed25519_record});
	dns.set_records("test._domainkey.football.example.com", RrType::TXT, {rfc8463_rsa_record});
	auto results = verify_sync(dns, rfc8463_message);
	REQUIRE(results.size() == 2);
	CHECK(results[0].status == Status::pass);
	CHECK(results[0].error == "");
	CHECK(results[0].domain() == "football.example.com");
	CHECK(results[0].selector() == "brisbane");
	CHECK(results[0].algorithm() == "ed25519-sha256");
	CHECK(results[0].b_prefix() == "9/dsDChY0YMT");
	CHECK(results[1].status == Status::pass);
	CHECK(results[1].algorithm() == "rsa-sha256");
	CHECK(results[1].key_comment() == "1024 bit rsa");
	CHECK(dns.queries() == 2);

	// Two passing signatures of one domain count once (doc/behaviour.md D14).
	CHECK(verified_domains(results) == std::vector<std::string>{"football.example.com"});
	VerifyOptions first_only;
	first_only.max_signatures = 1;
	CHECK(verify_sync(dns, rfc8463_message, first_only).size() == 1);

	// Changing the body breaks both.
	std::string changed = rfc8463_message;
	changed.replace(changed.find("hungry"), 6, "thirsty");
	auto bad = verify_sync(dns, changed);
	REQUIRE(bad.size() == 2);
	CHECK(bad[0].status == Status::fail);
	CHECK(bad[0].error.rfind("dkim: body hash does not match: signature bodyhash e1b2cd5c", 0) == 0);
	CHECK(bad[1].status == Status::fail);

	// Changing a signed header breaks the signature itself.
	std::string hdr = rfc8463_message;
	hdr.replace(hdr.find("Is dinner ready?"), 16, "Is lunch ready?");
	auto badh = verify_sync(dns, hdr);
	REQUIRE(badh.size() == 2);
	CHECK(badh[0].status == Status::fail);
	CHECK(badh[0].error == "dkim: signature verification failed: ed25519 verification");
	CHECK(badh[1].status == Status::fail);
	CHECK(badh[1].error.rfind("dkim: signature verification failed: rsa verification: ", 0) == 0);

	// Adding an unsigned header field is fine.
	auto extra = verify_sync(dns, "X-Extra: yes\r\n" + rfc8463_message);
	REQUIRE(extra.size() == 2);
	CHECK(extra[0].status == Status::pass);
	// Another From above: the oversigned "from" now picks it up.
	auto from2 = verify_sync(dns, "From: Mallory <m@evil.example>\r\n" + rfc8463_message);
	REQUIRE(from2.size() == 2);
	CHECK(from2[0].status == Status::fail);
}

TEST_CASE("python3-dkim signatures verify") {
	CannedResolver dns = python_dns();
	for (const std::string* sig : {&py_rsa_relaxed, &py_rsa_simple, &py_ed25519}) {
		CAPTURE(*sig);
		auto r = verify_sync(dns, *sig + py_message);
		REQUIRE(r.size() == 1);
		CHECK(r[0].status == Status::pass);
		CHECK(r[0].error == "");
	}

	// Relaxed body canon tolerates whitespace changes, simple does not.
	std::string ws = py_message;
	ws.replace(ws.find("bye."), 4, "bye.  ");
	CHECK(verify_sync(dns, py_rsa_relaxed + ws)[0].status == Status::pass);
	auto simple = verify_sync(dns, py_rsa_simple + ws);
	CHECK(simple[0].status == Status::fail);
	CHECK(simple[0].error.rfind("dkim: body hash does not match: ", 0) == 0);
	// Relaxed header canon tolerates re-folding and case of the name.
	std::string refold = py_message;
	refold.replace(refold.find("Subject: Test  message"), 22, "SUBJECT:\r\n\tTest message");
	CHECK(verify_sync(dns, py_rsa_relaxed + refold)[0].status == Status::pass);
	CHECK(verify_sync(dns, py_rsa_simple + refold)[0].status == Status::fail);
}

TEST_CASE("RFC 8301 3.1: an rsa-sha1 signature is never a pass") {
	// py_rsa_sha1 is a correct python3-dkim signature over py_message with
	// the key python_dns() serves; only its hash algorithm is refused.
	CannedResolver dns = python_dns();
	auto sha1 = verify_sync(dns, py_rsa_sha1 + py_message);
	REQUIRE(sha1.size() == 1);
	CHECK(sha1[0].algorithm() == "rsa-sha1");
	CHECK(sha1[0].status == Status::permerror);
	CHECK(sha1[0].error == "dkim: hash algorithm not allowed: \"rsa-sha1\" uses sha1 (RFC 8301)");
	// Ignoring the default policy or test mode changes nothing.
	VerifyOptions lax;
	lax.default_policy = false;
	lax.ignore_test_mode = true;
	CHECK(verify_sync(dns, py_rsa_sha1 + py_message, lax)[0].status == Status::permerror);
}

TEST_CASE("l= is refused by the default policy and honoured without it") {
	CannedResolver dns = python_dns();
	auto r = verify_sync(dns, py_rsa_length + py_message);
	REQUIRE(r.size() == 1);
	CHECK(r[0].status == Status::policy);
	CHECK(r[0].error == "dkim: signature rejected by policy: l= for length not acceptable");
	CHECK(dns.queries() == 0);  // policy is decided before any lookup

	VerifyOptions lenient;
	lenient.default_policy = false;
	CHECK(verify_sync(dns, py_rsa_length + py_message, lenient)[0].status == Status::pass);
	CHECK(r[0].refused_before_lookup);
	CHECK_FALSE(verify_sync(dns, py_rsa_length + py_message, lenient)[0].refused_before_lookup);
	// Text after the signed length does not matter...
	CHECK(verify_sync(dns, py_rsa_length + py_message + "appended\r\n", lenient)[0].status == Status::pass);
	// ...but a change inside it does.
	std::string changed = py_message;
	changed.replace(changed.find("bye."), 4, "BYE.");
	CHECK(verify_sync(dns, py_rsa_length + changed, lenient)[0].status == Status::fail);
}

TEST_CASE("key record problems") {
	const std::string msg = py_rsa_relaxed + py_message;
	auto one = [&](std::vector<std::string> records) {
		CannedResolver dns;
		dns.set_records("py._domainkey.example.org", RrType::TXT, std::move(records));
		auto r = verify_sync(dns, msg);
		REQUIRE(r.size() == 1);
		return r[0];
	};
	auto revoked = one({"v=DKIM1; k=rsa; p="});
	CHECK(revoked.status == Status::permerror);
	CHECK(revoked.error == "dkim: key has been revoked");

	auto syntax = one({"v=DKIM1; k=rsa"});
	CHECK(syntax.status == Status::permerror);
	CHECK(syntax.error == "dkim: syntax error in dkim dns record: missing field: public key");

	auto other = one({"google-site-verification: abc"});
	CHECK(other.status == Status::temperror);

	auto multiple = one({rfc8463_rsa_record, rfc8463_rsa_record});
	CHECK(multiple.status == Status::temperror);
	CHECK(multiple.error ==
	      "dkim: multiple dkim dns record for selector and domain: dns name \"py._domainkey.example.org.\"");

	auto mismatch = one({rfc8463_ed25519_record});
	CHECK(mismatch.status == Status::permerror);
	CHECK(
	    mismatch.error ==
	    "dkim: signature algorithm mismatch with dns record: dkim dns record requires algorithm \"ed25519\", message has \"rsa\"");

	auto hashes = one({"v=DKIM1; h=sha1; " + rfc8463_rsa_record.substr(9)});
	CHECK(hashes.status == Status::permerror);

	auto service = one({"v=DKIM1; s=other; " + rfc8463_rsa_record.substr(9)});
	CHECK(service.status == Status::permerror);
	CHECK(service.error == "dkim: dns record not allowed for use with email");

	auto testing = one({"v=DKIM1; t=y; " + rfc8463_rsa_record.substr(9)});
	CHECK(testing.status == Status::pass);
	CHECK(testing.testing);

	// Not found / DNS failure.
	CannedResolver empty;
	auto none = verify_sync(empty, msg);
	CHECK(none[0].status == Status::permerror);
	CHECK(none[0].error ==
	      "dkim: no dkim dns record for selector and domain: dns name \"py._domainkey.example.org.\"");
	CannedResolver failing;
	DnsAnswer servfail;
	servfail.status = DnsStatus::temperror;
	failing.set("py._domainkey.example.org", RrType::TXT, servfail);
	CHECK(verify_sync(failing, msg)[0].status == Status::temperror);
}

TEST_CASE("t=y turns a failure into none unless test mode is ignored") {
	CannedResolver dns;
	dns.set_records("py._domainkey.example.org", RrType::TXT, {"v=DKIM1; t=y; " + rfc8463_rsa_record.substr(9)});
	std::string changed = py_message;
	changed.replace(changed.find("bye."), 4, "BYE.");
	auto r = verify_sync(dns, py_rsa_relaxed + changed);
	CHECK(r[0].status == Status::none);
	CHECK(r[0].testing);
	VerifyOptions strict;
	strict.ignore_test_mode = true;
	CHECK(verify_sync(dns, py_rsa_relaxed + changed, strict)[0].status == Status::fail);
}

TEST_CASE("signature checks before lookup") {
	CannedResolver dns = python_dns();
	auto one = [&](const std::string& field) {
		auto r = verify_sync(dns, field + py_message);
		REQUIRE(r.size() == 1);
		return r[0];
	};
	const std::string tail = " bh=8JaQO8GKVE7TmGUGatr6iOYwlGyY/Go8Hbi5f8YUVDM=; b=dGVzdA==\r\n";
	auto nosubject = one("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=py; h=from:to;" + tail);
	CHECK(nosubject.status == Status::policy);
	CHECK(nosubject.error ==
	      "dkim: signature rejected by policy: required header fields missing from signature: subject");
	auto nofrom = one("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=py; h=subject;" + tail);
	CHECK(nofrom.status == Status::permerror);
	CHECK(nofrom.error == "dkim: bad from headers: required \"from\" header not signed");
	auto expired = one("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=py; h=from:subject; x=1000;" + tail);
	CHECK(expired.status == Status::permerror);
	CHECK(expired.error == "dkim: signature has expired: expiration time \"1970-01-01T00:16:40Z\"");
	// Decided before the key lookup, so Authentication-Results names no
	// header.* properties for them.
	CHECK(nosubject.refused_before_lookup);
	CHECK(nofrom.refused_before_lookup);
	CHECK(expired.refused_before_lookup);
	auto tld = one("DKIM-Signature: v=1; a=rsa-sha256; d=co.uk; s=py; h=from:subject;" + tail);
	CHECK(tld.status == Status::permerror);
	CHECK(tld.error == "dkim: signed domain is top-level domain, above organizational domain: co.uk");
	auto hash = one("DKIM-Signature: v=1; a=rsa-md5; d=example.org; s=py; h=from:subject;" + tail);
	CHECK(hash.status == Status::permerror);
	CHECK(hash.error == "dkim: unknown hash algorithm: \"md5\"");
	auto canon = one("DKIM-Signature: v=1; a=rsa-sha256; c=fancy/simple; d=example.org; s=py; h=from:subject;" +
	                 tail);
	CHECK(canon.status == Status::permerror);
	auto query = one("DKIM-Signature: v=1; a=rsa-sha256; q=http/well-known; d=example.org; s=py; h=from:subject;" +
	                 tail);
	CHECK(query.error == "dkim: no recognized query method: need dns/txt");
	auto missing = one("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=py; h=from:subject; b=dGVzdA==\r\n");
	CHECK(missing.status == Status::permerror);
	CHECK(missing.error == "parsing DKIM-Signature header: missing required tag: \"bh\"");
	CHECK_FALSE(missing.signature);
	CHECK(dns.queries() == 0);
}

TEST_CASE("no signature, malformed header") {
	CannedResolver dns;
	CHECK(verify_sync(dns, py_message).empty());
	auto bad = verify_sync(dns, " bad start\r\n\r\n");
	REQUIRE(bad.size() == 1);
	CHECK(bad[0].status == Status::permerror);
	CHECK(bad[0].error == "dkim: mail message header is malformed: malformed message, starts with space/tab");
}

TEST_CASE("private keys: load, public record, deterministic ed25519 signing") {
	std::string err;
	auto rsa = parse_private_key(rfc8463_rsa_pem, &err);
	REQUIRE_MESSAGE(rsa, err);
	CHECK(rsa->type() == KeyType::rsa);
	CHECK(rsa->bits() == 1024);
	CHECK(rsa->txt_record() == rfc8463_rsa_record);

	auto ed = parse_private_key(rfc8463_ed25519_pem, &err);
	REQUIRE_MESSAGE(ed, err);
	CHECK(ed->type() == KeyType::ed25519);
	CHECK(ed->txt_record() == rfc8463_ed25519_record);

	CHECK_FALSE(parse_private_key("garbage", &err));
	CHECK(err == "no PEM \"PRIVATE KEY\" or \"RSA PRIVATE KEY\" block found");

	// A 512-bit RSA key: every receiver refuses its signatures (RFC 8301
	// 3.2), so it does not load as a signing key.
	const char* rsa512 =
	    "-----BEGIN PRIVATE KEY-----\n"
	    "MIIBUwIBADANBgkqhkiG9w0BAQEFAASCAT0wggE5AgEAAkEArUdx0DjFkNzDc8dv\n"
	    "Q3EIStB5tgRpHmUgZPvnoXKbMCYVyKCJeqTFDv8kHsfIWPsKvD73TmrFTZ7nFgtD\n"
	    "eBMPhwIDAQABAkAf+JqrTI5HWDRH3HhO/UAGbcjHKLEshoQfncrzIu43R8HSnHi4\n"
	    "Q7nrP8/mVvnbL3vX+PqOdJAHdKY2iHhjoSYBAiEA3aIMx0eRhj00FibKIjlv0Lbw\n"
	    "pg88DQdaauTDPiJA+UcCIQDIJe+R/6mZHUt0Iwi9Bt9Wp8wauORmNxg+pPzYHKBX\n"
	    "wQIgCCrDi8hgXXD97V8Kjc5OB4PmREhFbzl5JH0/kJeUi1sCIBF4xk4PbGWyWfjc\n"
	    "ahHePLba1QVsKHwHyTUGwA+5iAHBAiBPXqCezVLyat1PCJeL0Rg8KIYYizxqY2Sf\n"
	    "S69hN5rI/Q==\n"
	    "-----END PRIVATE KEY-----\n";
	CHECK_FALSE(parse_private_key(rsa512, &err));
	CHECK(err == "rsa key of 512 bits is too weak: receivers need at least 1024");
	CHECK_FALSE(load_private_key("/nonexistent/key.pem", &err));

	// Ed25519 signatures are deterministic: the exact header is fixed.
	SignOptions o;
	o.domain = "example.org";
	o.selector = "ed";
	o.key = *ed;
	o.timestamp = 1764000000;
	auto header = sign_message(o, py_message, &err);
	REQUIRE_MESSAGE(header, err);
	CHECK(*header == ed25519_signed_header);

	// i= after s=, as the model writes it; c= left out for simple/simple,
	// its default (RFC 6376 3.5), and the signature still verifies.
	o.identity = "alice@example.org";
	o.header_canon = Canon::simple;
	o.body_canon = Canon::simple;
	header = sign_message(o, py_message, &err);
	REQUIRE_MESSAGE(header, err);
	CHECK(header->rfind("DKIM-Signature: v=1; d=example.org; s=ed; i=alice@example.org;\r\n\ta=ed25519-sha256; t=",
	                    0) == 0);
	CHECK(header->find("c=") == std::string::npos);
	CannedResolver dns = python_dns();
	CHECK(verify_sync(dns, *header + py_message)[0].status == Status::pass);
}

TEST_CASE("sign then verify round trips") {
	std::string err;
	auto ed = parse_private_key(rfc8463_ed25519_pem, &err);
	REQUIRE(ed);
	auto generated = generate_key(KeyType::rsa, 2048, &err);
	REQUIRE_MESSAGE(generated, err);
	CHECK(generated->pem.rfind("-----BEGIN PRIVATE KEY-----\n", 0) == 0);
	CHECK(generated->txt_record.rfind("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", 0) == 0);
	auto rsa = parse_private_key(generated->pem, &err);
	REQUIRE_MESSAGE(rsa, err);
	CHECK(rsa->bits() == 2048);
	CHECK(rsa->txt_record() == generated->txt_record);
	auto gen_ed = generate_key(KeyType::ed25519, 0, &err);
	REQUIRE(gen_ed);
	auto ed2 = parse_private_key(gen_ed->pem, &err);
	REQUIRE(ed2);
	CHECK(ed2->txt_record() == gen_ed->txt_record);

	CannedResolver dns;
	dns.set_records("rsa._domainkey.example.org", RrType::TXT, {generated->txt_record});
	dns.set_records("ed._domainkey.example.org", RrType::TXT, {rfc8463_ed25519_record});
	dns.set_records("ed2._domainkey.example.org", RrType::TXT, {gen_ed->txt_record});

	struct Case {
		const char* selector;
		PrivateKey key;
	};
	for (const Case& c : {Case{"rsa", *rsa}, Case{"ed", *ed}, Case{"ed2", *ed2}}) {
		for (Canon hc : {Canon::simple, Canon::relaxed}) {
			for (Canon bc : {Canon::simple, Canon::relaxed}) {
				CAPTURE(c.selector);
				CAPTURE(static_cast<int>(hc));
				CAPTURE(static_cast<int>(bc));
				SignOptions o;
				o.domain = "example.org";
				o.selector = c.selector;
				o.key = c.key;
				o.header_canon = hc;
				o.body_canon = bc;
				o.timestamp = std::time(nullptr);
				o.expiration_s = 3600;
				auto header = sign_message(o, py_message, &err);
				REQUIRE_MESSAGE(header, err);
				for (size_t pos = 0, nl; (nl = header->find("\r\n", pos)) != std::string::npos;
				     pos = nl + 2)
					CHECK(nl - pos <= 78);
				auto r = verify_sync(dns, *header + py_message);
				REQUIRE(r.size() == 1);
				CHECK(r[0].status == Status::pass);
				CHECK(r[0].error == "");

				std::string changed = py_message;
				changed.replace(changed.find("bye."), 4, "ciao");
				auto bad = verify_sync(dns, *header + changed);
				CHECK(bad[0].status == Status::fail);
				CHECK(bad[0].error.rfind("dkim: body hash does not match", 0) == 0);

				std::string hchanged = py_message;
				hchanged.replace(hchanged.find("Test  message"), 13, "Other message");
				CHECK(verify_sync(dns, *header + hchanged)[0].status == Status::fail);
				// Oversigning: an added To breaks the signature.
				CHECK(verify_sync(dns, *header + "To: eve@example.com\r\n" + py_message)[0].status ==
				      Status::fail);
			}
		}
	}
}

TEST_CASE("sign: header layout") {
	std::string err;
	auto ed = parse_private_key(rfc8463_ed25519_pem, &err);
	REQUIRE(ed);
	SignOptions o;
	o.domain = "example.org";
	o.selector = "s1";
	o.key = *ed;
	o.timestamp = 1000;
	o.expiration_s = 500;
	o.headers = {"From", "To", "Subject", "Date", "Message-Id", "Cc"};
	auto header = sign_message(o, py_message, &err);
	REQUIRE(header);
	auto parsed = parse_signature(*header);
	REQUIRE(parsed.signature);
	CHECK(parsed.signature->sign_time == 1000);
	CHECK(parsed.signature->expire_time == 1500);
	CHECK(parsed.signature->canonicalization == "relaxed/relaxed");
	// Present fields are listed twice, absent Cc once.
	CHECK(parsed.signature->signed_headers ==
	      std::vector<std::string>{"From", "To", "Subject", "Date", "Message-Id", "Cc", "From", "To", "Subject",
	                               "Date", "Message-Id"});
	o.oversign = false;
	o.expiration_s = 0;
	auto plain = parse_signature(*sign_message(o, py_message, &err));
	REQUIRE(plain.signature);
	CHECK(plain.signature->signed_headers.size() == 6);
	CHECK_FALSE(plain.signature->expire_time);

	// Exactly one From is required.
	CHECK_FALSE(sign_message(o, "From: a@example.org\r\n" + py_message, &err));
	CHECK(err == "dkim: bad from headers: message has 2 from headers, need exactly 1");
}

TEST_CASE("RSA keys below 1024 bits are refused") {
	// A 512-bit key signature made by python3-dkim at development time.
	CannedResolver dns;
	dns.set_records("weak._domainkey.example.org", RrType::TXT, {weak_record});
	auto r = verify_sync(dns, weak_signed + py_message);
	REQUIRE(r.size() == 1);
	CHECK(r[0].status == Status::permerror);
	CHECK(r[0].error == "dkim: key is too weak, need at least 1024 bits for rsa");
}

TEST_CASE("RSA keys with a huge public exponent are not used") {
	// The RFC 8463 key's modulus with e = 2^40 + 1, as PKCS#1
	// RSAPublicKey: verifying with a modulus-sized exponent would cost a
	// third of a second per signature of a stranger's key.
	std::string spki = tern::base64_decode(rfc8463_rsa_record.substr(rfc8463_rsa_record.find("p=") + 2)).value();
	size_t n_at = spki.find(std::string("\x02\x81\x81\x00", 4));
	REQUIRE(n_at != std::string::npos);
	std::string modulus = spki.substr(n_at, 4 + 128);
	std::string exponent("\x02\x06\x01\x00\x00\x00\x00\x01", 8);
	std::string der = std::string("\x30\x81\x8c", 3) + modulus + exponent;
	REQUIRE(detail::rsa_public_key_bits(der) == 1024);
	std::string error;
	CHECK_FALSE(detail::rsa_verify(der, HashAlg::sha256, "data", std::string(128, '\x01'), &error));
	CHECK(error == "RSA key with a public exponent over 2^31 or a modulus over 16384 bits");
	// The same modulus with 65537 goes on to the signature check.
	std::string usual = std::string("\x30\x81\x89", 3) + modulus + std::string("\x02\x03\x01\x00\x01", 5);
	CHECK_FALSE(detail::rsa_verify(usual, HashAlg::sha256, "data", std::string(128, '\x01'), &error));
	CHECK(error != "RSA key with a public exponent over 2^31 or a modulus over 16384 bits");
}

TEST_CASE("parse_signature: an l= too long for 64 bits is a syntax error (fuzzing regression)") {
	auto p = parse_signature(
	    "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1; h=From; "
	    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdA==; l=99999999999999999999");
	CHECK_FALSE(p.signature);
	CHECK(p.error.find("bad length") != std::string::npos);
}
