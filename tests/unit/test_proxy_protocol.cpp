// PROXY protocol v1/v2 parser and builders (src/net/proxy_protocol.h).
// Addresses are from the documentation ranges (RFC 5737, RFC 3849).
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "net/proxy_protocol.h"

using tern::IpAddr;
using tern::IpNet;
using tern::net::make_proxy_v1;
using tern::net::make_proxy_v1_unknown;
using tern::net::make_proxy_v2;
using tern::net::make_proxy_v2_local;
using tern::net::make_proxy_v2_tlv;
using tern::net::parse_proxy_header;
using tern::net::proxy_source_trusted;
using tern::net::ProxyHeader;
using tern::net::ProxyParse;

namespace {

IpAddr ip(std::string_view text) {
	auto parsed = IpAddr::parse(text);
	REQUIRE(parsed);
	return *parsed;
}

IpNet net(std::string_view text) {
	auto parsed = IpNet::parse(text);
	REQUIRE(parsed);
	return *parsed;
}

struct Result {
	ProxyParse status;
	ProxyHeader header;
	size_t consumed = 9999;  // sentinel: untouched unless done
};

Result parse(std::string_view bytes) {
	Result r;
	r.status = parse_proxy_header(bytes, r.header, r.consumed);
	return r;
}

// Feeds `bytes` one byte at a time; every strict prefix must ask for more,
// and the whole must parse.
Result parse_byte_by_byte(std::string_view bytes) {
	for (size_t n = 0; n < bytes.size(); n++) {
		Result partial = parse(bytes.substr(0, n));
		INFO("prefix length " << n);
		CHECK(partial.status == ProxyParse::need_more);
		CHECK(partial.consumed == 9999);
	}
	return parse(bytes);
}

const std::string v2_sig{"\r\n\r\n\0\r\nQUIT\n", 12};

std::string bytes(std::initializer_list<int> list) {
	std::string s;
	for (int b : list) s.push_back(static_cast<char>(b));
	return s;
}

}  // namespace

TEST_CASE("PROXY v1 TCP4") {
	std::string line = "PROXY TCP4 192.0.2.10 192.0.2.1 56324 25\r\n";
	auto r = parse(line);
	REQUIRE(r.status == ProxyParse::done);
	CHECK(r.consumed == line.size());
	CHECK(r.consumed == 42);
	CHECK_FALSE(r.header.local);
	REQUIRE(r.header.source);
	REQUIRE(r.header.destination);
	CHECK(r.header.source->to_string() == "192.0.2.10");
	CHECK_FALSE(r.header.source->v6);
	CHECK(r.header.destination->to_string() == "192.0.2.1");
	CHECK(r.header.source_port == 56324);
	CHECK(r.header.destination_port == 25);
}

TEST_CASE("PROXY v1 TCP6") {
	std::string line = "PROXY TCP6 2001:db8::1:2 2001:db8::25 65535 587\r\n";
	auto r = parse(line);
	REQUIRE(r.status == ProxyParse::done);
	CHECK(r.consumed == line.size());
	REQUIRE(r.header.source);
	CHECK(r.header.source->v6);
	CHECK(r.header.source->to_string() == "2001:db8::1:2");
	CHECK(r.header.destination->to_string() == "2001:db8::25");
	CHECK(r.header.source_port == 65535);
	CHECK(r.header.destination_port == 587);

	// Upper-case hex and port 0 are allowed.
	auto upper = parse("PROXY TCP6 2001:DB8::A 2001:db8::b 0 25\r\n");
	REQUIRE(upper.status == ProxyParse::done);
	CHECK(upper.header.source->to_string() == "2001:db8::a");
	CHECK(upper.header.source_port == 0);

	// IPv4-mapped IPv6 comes out as IPv4, like a real peer would.
	auto mapped = parse("PROXY TCP6 ::ffff:192.0.2.7 2001:db8::25 1000 25\r\n");
	REQUIRE(mapped.status == ProxyParse::done);
	CHECK_FALSE(mapped.header.source->v6);
	CHECK(mapped.header.source->to_string() == "192.0.2.7");
}

TEST_CASE("PROXY v1 UNKNOWN") {
	auto bare = parse("PROXY UNKNOWN\r\n");
	REQUIRE(bare.status == ProxyParse::done);
	CHECK(bare.consumed == 15);
	CHECK(bare.header.local);
	CHECK_FALSE(bare.header.source);
	CHECK_FALSE(bare.header.destination);

	// Section 2.1: anything after UNKNOWN up to the CRLF is ignored.
	std::string with_junk = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
	auto junk = parse(with_junk);
	REQUIRE(junk.status == ProxyParse::done);
	CHECK(junk.consumed == with_junk.size());
	CHECK(junk.header.local);
	CHECK_FALSE(junk.header.source);

	CHECK(parse("PROXY UNKNOWNX\r\n").status == ProxyParse::invalid);
}

TEST_CASE("PROXY v1 malformed") {
	auto invalid = [](std::string_view line) {
		INFO(line);
		CHECK(parse(line).status == ProxyParse::invalid);
	};
	// Bad keyword or protocol.
	invalid("PROXZ TCP4 192.0.2.10 192.0.2.1 56324 25\r\n");
	invalid("proxy TCP4 192.0.2.10 192.0.2.1 56324 25\r\n");
	invalid("PROXY TCP5 192.0.2.10 192.0.2.1 56324 25\r\n");
	invalid("PROXY UDP4 192.0.2.10 192.0.2.1 56324 25\r\n");
	invalid("PROXY tcp4 192.0.2.10 192.0.2.1 56324 25\r\n");
	invalid("PROXY\r\n");
	invalid("PROXY TCP4\r\n");
	// SMTP instead of a header.
	invalid("EHLO client.example\r\n");
	// Family mismatch.
	invalid("PROXY TCP4 2001:db8::1 2001:db8::2 56324 25\r\n");
	invalid("PROXY TCP6 192.0.2.10 192.0.2.1 56324 25\r\n");
	invalid("PROXY TCP4 192.0.2.10 2001:db8::2 56324 25\r\n");
	invalid("PROXY TCP6 2001:db8::1 192.0.2.1 56324 25\r\n");
	// Bad addresses.
	invalid("PROXY TCP4 192.0.2.300 192.0.2.1 56324 25\r\n");
	invalid("PROXY TCP4 192.0.2.010 192.0.2.1 56324 25\r\n");
	invalid("PROXY TCP4 192.0.2 192.0.2.1 56324 25\r\n");
	invalid("PROXY TCP4 mail.example 192.0.2.1 56324 25\r\n");
	invalid("PROXY TCP6 2001:db8:::1 2001:db8::2 56324 25\r\n");
	// Bad ports: out of range, leading zero, sign, hex, missing, empty.
	invalid("PROXY TCP4 192.0.2.10 192.0.2.1 65536 25\r\n");
	invalid("PROXY TCP4 192.0.2.10 192.0.2.1 99999 25\r\n");
	invalid("PROXY TCP4 192.0.2.10 192.0.2.1 056324 25\r\n");
	invalid("PROXY TCP4 192.0.2.10 192.0.2.1 00 25\r\n");
	invalid("PROXY TCP4 192.0.2.10 192.0.2.1 +5 25\r\n");
	invalid("PROXY TCP4 192.0.2.10 192.0.2.1 0x19 25\r\n");
	invalid("PROXY TCP4 192.0.2.10 192.0.2.1 56324\r\n");
	invalid("PROXY TCP4 192.0.2.10 192.0.2.1 56324 25 7\r\n");
	// Extra or missing spaces.
	invalid("PROXY  TCP4 192.0.2.10 192.0.2.1 56324 25\r\n");
	invalid("PROXY TCP4  192.0.2.10 192.0.2.1 56324 25\r\n");
	invalid("PROXY TCP4 192.0.2.10  192.0.2.1 56324 25\r\n");
	invalid("PROXY TCP4 192.0.2.10 192.0.2.1 56324  25\r\n");
	invalid("PROXY TCP4 192.0.2.10 192.0.2.1 56324 25 \r\n");
	invalid(" PROXY TCP4 192.0.2.10 192.0.2.1 56324 25\r\n");
	invalid("PROXY TCP4 192.0.2.10\t192.0.2.1 56324 25\r\n");
	// Bare LF is not CRLF.
	invalid("PROXY TCP4 192.0.2.10 192.0.2.1 56324 25\n");
	invalid("PROXY TCP4 192.0.2.10 192.0.2.1 56324 25\r\r\n");
}

TEST_CASE("PROXY v1 107-byte limit") {
	// The longest legal line (section 2.1 example) is exactly 107 bytes.
	std::string longest =
	    "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	REQUIRE(longest.size() == 104);
	std::string unknown_107 = "PROXY UNKNOWN " + std::string(91, 'x') + "\r\n";
	REQUIRE(unknown_107.size() == 107);
	auto r = parse(unknown_107);
	REQUIRE(r.status == ProxyParse::done);
	CHECK(r.consumed == 107);
	auto l = parse(longest);
	REQUIRE(l.status == ProxyParse::done);
	CHECK(l.header.source->to_string() == "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");

	// One byte more and the CRLF lies beyond the limit.
	std::string unknown_108 = "PROXY UNKNOWN " + std::string(92, 'x') + "\r\n";
	CHECK(parse(unknown_108).status == ProxyParse::invalid);
	// No CRLF yet: more may come below 107 bytes, not at 107.
	std::string no_crlf = "PROXY UNKNOWN " + std::string(92, 'x');
	REQUIRE(no_crlf.size() == 106);
	CHECK(parse(no_crlf).status == ProxyParse::need_more);
	CHECK(parse(no_crlf + "\r").status == ProxyParse::invalid);
	CHECK(parse(no_crlf + "x").status == ProxyParse::invalid);
	CHECK(parse(no_crlf + "xxxxxxxxx\r\n").status == ProxyParse::invalid);
}

TEST_CASE("PROXY v1 split delivery and trailing SMTP bytes") {
	std::string line = "PROXY TCP4 192.0.2.10 192.0.2.1 56324 25\r\n";
	auto r = parse_byte_by_byte(line);
	REQUIRE(r.status == ProxyParse::done);
	CHECK(r.consumed == line.size());
	CHECK(r.header.source->to_string() == "192.0.2.10");

	std::string line6 = "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
	auto r6 = parse_byte_by_byte(line6);
	REQUIRE(r6.status == ProxyParse::done);
	CHECK(r6.header.destination_port == 2);

	auto ru = parse_byte_by_byte("PROXY UNKNOWN\r\n");
	REQUIRE(ru.status == ProxyParse::done);
	CHECK(ru.header.local);

	// A pipelining client's EHLO in the same read stays for SMTP.
	std::string with_smtp = line + "EHLO client.example\r\n";
	auto t = parse(with_smtp);
	REQUIRE(t.status == ProxyParse::done);
	CHECK(t.consumed == 42);
	CHECK(with_smtp.substr(t.consumed) == "EHLO client.example\r\n");

	// A second PROXY line after the first is SMTP's problem, not ours.
	auto twice = parse(line + line);
	REQUIRE(twice.status == ProxyParse::done);
	CHECK(twice.consumed == 42);
}

TEST_CASE("PROXY v1 partial input rejected as soon as it cannot become valid") {
	CHECK(parse("").status == ProxyParse::need_more);
	CHECK(parse("P").status == ProxyParse::need_more);
	CHECK(parse("PROXY").status == ProxyParse::need_more);
	CHECK(parse("PROXY T").status == ProxyParse::need_more);
	CHECK(parse("PROXY UNKNOWN\r").status == ProxyParse::need_more);
	CHECK(parse("PROXY TCP4 192.0.2.10 ").status == ProxyParse::need_more);
	CHECK(parse("E").status == ProxyParse::invalid);
	CHECK(parse("PROXX").status == ProxyParse::invalid);
	CHECK(parse("PROXYX").status == ProxyParse::invalid);
	CHECK(parse("PROXY X").status == ProxyParse::invalid);
	CHECK(parse("PROXY TCP4\r").status == ProxyParse::invalid);
	CHECK(parse("PROXY TCP7 ").status == ProxyParse::invalid);
	CHECK(parse("PROXY TCP4 192.0.2.10  ").status == ProxyParse::invalid);
	CHECK(parse("PROXY TCP4 192.0.2.10 192.0.2.1 1 2 ").status == ProxyParse::invalid);
	CHECK(parse("PROXY TCP4 192.0.2.10\n").status == ProxyParse::invalid);
	CHECK(parse("PROXY TCP4 mail").status == ProxyParse::invalid);
	CHECK(parse("PROXY TCP4 192.0.2.10 192.0.2.1 1 2\rX").status == ProxyParse::invalid);
}

TEST_CASE("make_proxy_v1") {
	CHECK(make_proxy_v1(ip("192.0.2.10"), 56324, ip("192.0.2.1"), 25) ==
	      "PROXY TCP4 192.0.2.10 192.0.2.1 56324 25\r\n");
	CHECK(make_proxy_v1(ip("2001:db8::1"), 1234, ip("2001:db8::2"), 587) ==
	      "PROXY TCP6 2001:db8::1 2001:db8::2 1234 587\r\n");
	// Mixed families are written as IPv6 (IPv4-mapped).
	std::string mixed = make_proxy_v1(ip("192.0.2.10"), 1, ip("2001:db8::2"), 2);
	CHECK(mixed == "PROXY TCP6 ::ffff:192.0.2.10 2001:db8::2 1 2\r\n");
	auto r = parse(mixed);
	REQUIRE(r.status == ProxyParse::done);
	CHECK(r.header.source->to_string() == "192.0.2.10");
	CHECK(make_proxy_v1_unknown() == "PROXY UNKNOWN\r\n");
}

TEST_CASE("PROXY v2 IPv4") {
	std::string h = make_proxy_v2(ip("192.0.2.10"), 56324, ip("192.0.2.1"), 25);
	// Exact wire bytes (section 2.2).
	CHECK(h == v2_sig + bytes({0x21, 0x11, 0x00, 0x0c, 192, 0, 2, 10, 192, 0, 2, 1, 0xdc, 0x04, 0x00, 0x19}));
	REQUIRE(h.size() == 28);
	auto r = parse(h);
	REQUIRE(r.status == ProxyParse::done);
	CHECK(r.consumed == 28);
	CHECK_FALSE(r.header.local);
	CHECK(r.header.source->to_string() == "192.0.2.10");
	CHECK_FALSE(r.header.source->v6);
	CHECK(r.header.destination->to_string() == "192.0.2.1");
	CHECK(r.header.source_port == 56324);
	CHECK(r.header.destination_port == 25);

	auto split = parse_byte_by_byte(h);
	REQUIRE(split.status == ProxyParse::done);
	CHECK(split.consumed == 28);
	CHECK(split.header.source->to_string() == "192.0.2.10");
}

TEST_CASE("PROXY v2 IPv6") {
	std::string h = make_proxy_v2(ip("2001:db8::1"), 1234, ip("2001:db8::25"), 587);
	REQUIRE(h.size() == 52);
	CHECK(h.substr(12, 4) == bytes({0x21, 0x21, 0x00, 0x24}));
	CHECK(h.substr(16, 4) == bytes({0x20, 0x01, 0x0d, 0xb8}));
	CHECK(h.substr(48, 4) == bytes({0x04, 0xd2, 0x02, 0x4b}));
	auto r = parse(h);
	REQUIRE(r.status == ProxyParse::done);
	CHECK(r.consumed == 52);
	CHECK(r.header.source->v6);
	CHECK(r.header.source->to_string() == "2001:db8::1");
	CHECK(r.header.destination->to_string() == "2001:db8::25");
	CHECK(r.header.source_port == 1234);
	CHECK(r.header.destination_port == 587);

	// Mixed families travel as IPv6 and the mapped one comes back as IPv4.
	auto mixed = parse(make_proxy_v2(ip("192.0.2.10"), 1, ip("2001:db8::2"), 2));
	REQUIRE(mixed.status == ProxyParse::done);
	CHECK_FALSE(mixed.header.source->v6);
	CHECK(mixed.header.source->to_string() == "192.0.2.10");
	CHECK(mixed.header.destination->to_string() == "2001:db8::2");
}

TEST_CASE("PROXY v2 with TLVs and trailing SMTP bytes") {
	std::string tlvs = make_proxy_v2_tlv(0x04, "") +              // PP2_TYPE_NOOP
	    make_proxy_v2_tlv(0x02, "mx.example.org") +               // PP2_TYPE_AUTHORITY
	    make_proxy_v2_tlv(0x20, std::string("\x01\0\0\0\0", 5));  // PP2_TYPE_SSL
	CHECK(tlvs.size() == 3 + 17 + 8);
	CHECK(make_proxy_v2_tlv(0x02, "ab") == bytes({0x02, 0x00, 0x02, 'a', 'b'}));

	std::string h4 = make_proxy_v2(ip("192.0.2.10"), 40000, ip("192.0.2.1"), 25, tlvs);
	REQUIRE(h4.size() == 16 + 12 + 28);
	CHECK(h4.substr(14, 2) == bytes({0x00, 40}));
	auto r4 = parse(h4 + "EHLO x\r\n");
	REQUIRE(r4.status == ProxyParse::done);
	CHECK(r4.consumed == 56);
	CHECK(r4.header.source->to_string() == "192.0.2.10");
	CHECK(r4.header.source_port == 40000);

	std::string h6 = make_proxy_v2(ip("2001:db8::7"), 40001, ip("2001:db8::1"), 465, tlvs);
	auto r6 = parse_byte_by_byte(h6);
	REQUIRE(r6.status == ProxyParse::done);
	CHECK(r6.consumed == 16 + 36 + 28);
	CHECK(r6.header.source->to_string() == "2001:db8::7");
	CHECK(r6.header.destination_port == 465);

	// A TLV running past the declared length is malformed.
	std::string bad = make_proxy_v2(ip("192.0.2.10"), 1, ip("192.0.2.1"), 2, bytes({0x02, 0x00, 0x05, 'a', 'b'}));
	CHECK(parse(bad).status == ProxyParse::invalid);
	// So are one or two stray bytes after the addresses.
	CHECK(parse(make_proxy_v2(ip("192.0.2.10"), 1, ip("192.0.2.1"), 2, bytes({0x04, 0x00}))).status ==
	      ProxyParse::invalid);
}

TEST_CASE("PROXY v2 LOCAL and address families without addresses") {
	std::string local = make_proxy_v2_local();
	CHECK(local == v2_sig + bytes({0x20, 0x00, 0x00, 0x00}));
	auto r = parse(local + "QUIT\r\n");
	REQUIRE(r.status == ProxyParse::done);
	CHECK(r.consumed == 16);
	CHECK(r.header.local);
	CHECK_FALSE(r.header.source);

	// LOCAL with addresses: they are ignored (section 2.2).
	std::string local_inet = v2_sig + bytes({0x20, 0x11, 0x00, 0x0c, 192, 0, 2, 10, 192, 0, 2, 1, 0, 1, 0, 2});
	auto li = parse(local_inet);
	REQUIRE(li.status == ProxyParse::done);
	CHECK(li.consumed == 28);
	CHECK(li.header.local);
	CHECK_FALSE(li.header.source);

	// LOCAL with TLVs.
	auto lt = parse(make_proxy_v2_local(make_proxy_v2_tlv(0x04, "pad")));
	REQUIRE(lt.status == ProxyParse::done);
	CHECK(lt.consumed == 22);
	CHECK(lt.header.local);

	// PROXY command with UNSPEC family: use the real peer.
	auto unspec = parse(v2_sig + bytes({0x21, 0x00, 0x00, 0x00}));
	REQUIRE(unspec.status == ProxyParse::done);
	CHECK(unspec.header.local);

	// PROXY command over a UNIX socket: 216 bytes of paths, local.
	std::string unix_h = v2_sig + bytes({0x21, 0x31, 0x00, 0xd8}) + std::string(216, '\0');
	auto ux = parse(unix_h);
	REQUIRE(ux.status == ProxyParse::done);
	CHECK(ux.consumed == 232);
	CHECK(ux.header.local);

	// UDP claimed on our TCP listener.
	CHECK(parse(v2_sig + bytes({0x21, 0x12, 0x00, 0x0c}) + std::string(12, '\0')).status == ProxyParse::invalid);
}

TEST_CASE("PROXY v2 malformed") {
	std::string good = make_proxy_v2(ip("192.0.2.10"), 56324, ip("192.0.2.1"), 25);

	// Bad signature, at each position.
	for (size_t i = 0; i < 12; i++) {
		std::string bad = good;
		bad[i] = static_cast<char>(bad[i] ^ 0x40);
		INFO("signature byte " << i);
		CHECK(parse(bad).status == ProxyParse::invalid);
		CHECK(parse(bad.substr(0, i + 1)).status == ProxyParse::invalid);
	}
	// Bad version (1, 3) and command (2, 0xf).
	for (int ver_cmd : {0x11, 0x31, 0x01, 0x22, 0x2f}) {
		std::string bad = good;
		bad[12] = static_cast<char>(ver_cmd);
		INFO("ver_cmd " << ver_cmd);
		CHECK(parse(bad).status == ProxyParse::invalid);
		CHECK(parse(bad.substr(0, 13)).status == ProxyParse::invalid);
	}
	// Unassigned family (4) or transport (3).
	for (int fam : {0x41, 0x13}) {
		std::string bad = good;
		bad[13] = static_cast<char>(fam);
		CHECK(parse(bad).status == ProxyParse::invalid);
		CHECK(parse(bad.substr(0, 14)).status == ProxyParse::invalid);
	}
	// Length too short for the addresses: invalid at once.
	std::string short_len = v2_sig + bytes({0x21, 0x11, 0x00, 0x0b}) + std::string(11, '\0');
	CHECK(parse(short_len).status == ProxyParse::invalid);
	CHECK(parse(short_len.substr(0, 16)).status == ProxyParse::invalid);
	CHECK(parse(v2_sig + bytes({0x21, 0x21, 0x00, 0x0c})).status == ProxyParse::invalid);

	// Truncated: every prefix of a good header waits for more.
	for (size_t n = 0; n < good.size(); n++) {
		INFO("prefix " << n);
		CHECK(parse(good.substr(0, n)).status == ProxyParse::need_more);
	}

	// Oversize length: decided from the 16 fixed bytes, no waiting for 65 KB.
	CHECK(parse(v2_sig + bytes({0x21, 0x11, 0xff, 0xff})).status == ProxyParse::invalid);
	CHECK(parse(v2_sig + bytes({0x20, 0x00, 0xff, 0xff})).status == ProxyParse::invalid);
	// Limit: 4096 bytes of TLVs after the IPv4 block is accepted, one more is not.
	std::string max_tlv = make_proxy_v2_tlv(0x04, std::string(4093, 'p'));
	REQUIRE(max_tlv.size() == tern::net::proxy_v2_max_tlv_bytes);
	auto at_limit = parse(make_proxy_v2(ip("192.0.2.10"), 1, ip("192.0.2.1"), 2, max_tlv));
	REQUIRE(at_limit.status == ProxyParse::done);
	CHECK(at_limit.consumed == 16 + 12 + 4096);
	std::string over = make_proxy_v2(ip("192.0.2.10"), 1, ip("192.0.2.1"), 2,
	                                 make_proxy_v2_tlv(0x04, std::string(4094, 'p')));
	CHECK(parse(over.substr(0, 16)).status == ProxyParse::invalid);
	CHECK(parse(over).status == ProxyParse::invalid);
	// LOCAL is bounded the same way.
	CHECK(parse(make_proxy_v2_local(max_tlv)).status == ProxyParse::done);
	CHECK(parse(make_proxy_v2_local(make_proxy_v2_tlv(0x04, std::string(4094, 'p')))).status ==
	      ProxyParse::invalid);
}

TEST_CASE("proxy_source_trusted") {
	std::vector<IpNet> trusted = {net("192.0.2.0/25"), net("2001:db8:1::/48"), net("198.51.100.7")};
	CHECK(proxy_source_trusted(ip("192.0.2.1"), trusted));
	CHECK(proxy_source_trusted(ip("192.0.2.127"), trusted));
	CHECK_FALSE(proxy_source_trusted(ip("192.0.2.128"), trusted));
	CHECK(proxy_source_trusted(ip("198.51.100.7"), trusted));
	CHECK_FALSE(proxy_source_trusted(ip("198.51.100.8"), trusted));
	CHECK(proxy_source_trusted(ip("2001:db8:1::5"), trusted));
	CHECK(proxy_source_trusted(ip("2001:db8:1:ffff::1"), trusted));
	CHECK_FALSE(proxy_source_trusted(ip("2001:db8:2::5"), trusted));
	// A v4-mapped peer is the v4 address.
	CHECK(proxy_source_trusted(ip("::ffff:192.0.2.9"), trusted));
	// No family crossing: ::/0 does not cover IPv4, 0.0.0.0/0 not IPv6.
	CHECK_FALSE(proxy_source_trusted(ip("192.0.2.1"), {net("::/0")}));
	CHECK_FALSE(proxy_source_trusted(ip("2001:db8::1"), {net("0.0.0.0/0")}));
	CHECK(proxy_source_trusted(ip("2001:db8::1"), {net("::/0")}));
	// Empty list trusts nobody.
	CHECK_FALSE(proxy_source_trusted(ip("192.0.2.1"), {}));
}

TEST_CASE("proxy v1: a protocol token longer than its name stays invalid (fuzzing regression)") {
	tern::net::ProxyHeader h;
	size_t consumed = 0;
	CHECK(tern::net::parse_proxy_header("PROXY TCP6x\r", h, consumed) == tern::net::ProxyParse::invalid);
	CHECK(tern::net::parse_proxy_header("PROXY TCP6x\ry", h, consumed) == tern::net::ProxyParse::invalid);
	CHECK(tern::net::parse_proxy_header("PROXY TCP", h, consumed) == tern::net::ProxyParse::need_more);
}

TEST_CASE("PROXY v1: a NUL inside an address is refused whole and split across reads (fuzzing regression)") {
	using namespace std::string_literals;
	const std::string tcp4 = "PROXY TCP4 192.0.2.7\0junk 192.0.2.1 56324 25\r\n"s;
	const std::string tcp4_destination = "PROXY TCP4 192.0.2.7 192.0.2.1\0 56324 25\r\n"s;
	const std::string tcp6 = "PROXY TCP6 2001:db8::7\0 2001:db8::1 56324 25\r\n"s;
	for (const std::string& line : {tcp4, tcp4_destination, tcp6}) {
		INFO("line of " << line.size() << " bytes");
		CHECK(parse(line).status == ProxyParse::invalid);
		// The same bytes delivered in every possible two-read split give the
		// same answer: the first read either waits for more or refuses, and
		// once refused the whole stays refused.
		for (size_t cut = 0; cut < line.size(); cut++) {
			INFO("first read of " << cut << " bytes");
			ProxyParse first = parse(line.substr(0, cut)).status;
			CHECK(first != ProxyParse::done);
			CHECK(parse(line).status == ProxyParse::invalid);
		}
		// Up to the NUL the prefix is plausible; from the NUL on it is not.
		size_t nul = line.find('\0');
		CHECK(parse(line.substr(0, nul)).status == ProxyParse::need_more);
		CHECK(parse(line.substr(0, nul + 1)).status == ProxyParse::invalid);
	}
	// UNKNOWN still ignores whatever comes before the CRLF (section 2.1).
	CHECK(parse("PROXY UNKNOWN \0x\r\n"s).status == ProxyParse::done);
}
