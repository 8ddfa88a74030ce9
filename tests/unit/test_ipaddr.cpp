// IpAddr / IpNet: parsing, formatting, masking, containment.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <cstring>
#include <netinet/in.h>

#include "util/ipaddr.h"

using tern::IpAddr;
using tern::IpNet;

TEST_CASE("IPv4 parse and format") {
	auto ip = IpAddr::parse("192.0.2.10");
	REQUIRE(ip);
	CHECK_FALSE(ip->v6);
	CHECK(ip->bytes[0] == 192);
	CHECK(ip->bytes[3] == 10);
	CHECK(ip->to_string() == "192.0.2.10");
	CHECK(ip->to_literal() == "[192.0.2.10]");
}

TEST_CASE("IPv6 parse and canonical format") {
	auto ip = IpAddr::parse("2001:DB8:0:0:0:0:0:1");
	REQUIRE(ip);
	CHECK(ip->v6);
	CHECK(ip->to_string() == "2001:db8::1");
	CHECK(ip->to_literal() == "[IPv6:2001:db8::1]");
	CHECK(IpAddr::parse("::1")->to_string() == "::1");
}

TEST_CASE("IPv4-mapped IPv6 is stored as IPv4") {
	auto mapped = IpAddr::parse("::ffff:198.51.100.7");
	REQUIRE(mapped);
	CHECK_FALSE(mapped->v6);
	CHECK(mapped->to_string() == "198.51.100.7");
	CHECK(*mapped == *IpAddr::parse("198.51.100.7"));
}

TEST_CASE("invalid addresses are refused") {
	CHECK_FALSE(IpAddr::parse(""));
	CHECK_FALSE(IpAddr::parse("1.2.3"));
	CHECK_FALSE(IpAddr::parse("1.2.3.256"));
	CHECK_FALSE(IpAddr::parse("1.2.3.4 "));
	CHECK_FALSE(IpAddr::parse("example.com"));
	CHECK_FALSE(IpAddr::parse("1::2::3"));
	CHECK_FALSE(IpAddr::parse("fe80::1%eth0"));
}

TEST_CASE("the unspecified addresses are the wildcards, and only they") {
	for (const char* text : {"0.0.0.0", "::", "::ffff:0.0.0.0"}) {
		CAPTURE(text);
		auto a = IpAddr::parse(text);
		REQUIRE(a);
		CHECK(a->unspecified());
	}
	for (const char* text : {"127.0.0.1", "::1", "0.0.0.1", "1.0.0.0", "::100", "8000::"}) {
		CAPTURE(text);
		auto a = IpAddr::parse(text);
		REQUIRE(a);
		CHECK_FALSE(a->unspecified());
	}
}

TEST_CASE("loopback addresses: 127.0.0.0/8 and ::1") {
	for (const char* text : {"127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "::ffff:127.0.0.1"}) {
		CAPTURE(text);
		CHECK(IpAddr::parse(text)->loopback());
	}
	for (const char* text : {"126.255.255.255", "128.0.0.1", "0.0.0.0", "::", "::2", "1::1", "::127.0.0.1"}) {
		CAPTURE(text);
		CHECK_FALSE(IpAddr::parse(text)->loopback());
	}
}

TEST_CASE("private-network addresses: RFC 1918, shared, link-local, unique local") {
	for (const char* text : {"10.0.0.0", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.0.1",
	                         "192.168.255.255", "100.64.0.0", "100.127.255.255", "169.254.0.1", "::ffff:10.1.2.3",
	                         "fc00::1", "fdff:ffff::1", "fe80::1", "febf::1"}) {
		CAPTURE(text);
		CHECK(IpAddr::parse(text)->local_network());
	}
	for (const char* text : {"9.255.255.255", "11.0.0.0", "172.15.255.255", "172.32.0.0", "192.167.255.255",
	                         "192.169.0.0", "100.63.255.255", "100.128.0.0", "169.253.0.1", "127.0.0.1", "::1",
	                         "fbff::1", "fe00::1", "fec0::1", "2001:db8::1", "192.0.2.1"}) {
		CAPTURE(text);
		CHECK_FALSE(IpAddr::parse(text)->local_network());
	}
}

TEST_CASE("from_sockaddr") {
	sockaddr_in sin{};
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "203.0.113.5", &sin.sin_addr);
	auto a = IpAddr::from_sockaddr(reinterpret_cast<sockaddr*>(&sin));
	REQUIRE(a);
	CHECK(a->to_string() == "203.0.113.5");

	sockaddr_in6 sin6{};
	sin6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:203.0.113.5", &sin6.sin6_addr);
	auto b = IpAddr::from_sockaddr(reinterpret_cast<sockaddr*>(&sin6));
	REQUIRE(b);
	CHECK_FALSE(b->v6);
	CHECK(*a == *b);

	inet_pton(AF_INET6, "2001:db8::2", &sin6.sin6_addr);
	auto c = IpAddr::from_sockaddr(reinterpret_cast<sockaddr*>(&sin6));
	REQUIRE(c);
	CHECK(c->v6);
	CHECK(c->to_string() == "2001:db8::2");
}

TEST_CASE("masking stays within the address family") {
	auto v4 = *IpAddr::parse("10.20.30.40");
	CHECK(v4.masked(32).to_string() == "10.20.30.40");
	CHECK(v4.masked(26).to_string() == "10.20.30.0");
	CHECK(v4.masked(21).to_string() == "10.20.24.0");
	CHECK(v4.masked(8).to_string() == "10.0.0.0");
	CHECK(v4.masked(0).to_string() == "0.0.0.0");
	CHECK(v4.masked(64).to_string() == "10.20.30.40");  // clamped to 32

	auto v6 = *IpAddr::parse("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff");
	CHECK(v6.masked(64).to_string() == "2001:db8:aaaa:bbbb::");
	CHECK(v6.masked(48).to_string() == "2001:db8:aaaa::");
	CHECK(v6.masked(32).to_string() == "2001:db8::");
	CHECK(v6.masked(36).to_string() == "2001:db8:a000::");
	CHECK(v6.masked(128) == v6);
}

TEST_CASE("IpNet parse and contains") {
	auto net = IpNet::parse("10.1.2.3/8");
	REQUIRE(net);
	CHECK(net->prefix == 8);
	CHECK(net->base.to_string() == "10.0.0.0");
	CHECK(net->contains(*IpAddr::parse("10.255.0.1")));
	CHECK_FALSE(net->contains(*IpAddr::parse("11.0.0.1")));
	CHECK_FALSE(net->contains(*IpAddr::parse("::a00:1")));

	auto net6 = IpNet::parse("2001:db8::/32");
	REQUIRE(net6);
	CHECK(net6->contains(*IpAddr::parse("2001:db8:ffff::1")));
	CHECK_FALSE(net6->contains(*IpAddr::parse("2001:db9::1")));
	CHECK_FALSE(net6->contains(*IpAddr::parse("10.0.0.1")));

	auto host = IpNet::parse("192.0.2.1");
	REQUIRE(host);
	CHECK(host->prefix == 32);
	CHECK(host->contains(*IpAddr::parse("192.0.2.1")));
	CHECK_FALSE(host->contains(*IpAddr::parse("192.0.2.2")));

	CHECK(IpNet::parse("0.0.0.0/0")->contains(*IpAddr::parse("8.8.8.8")));
	CHECK_FALSE(IpNet::parse("10.0.0.0/33"));
	CHECK_FALSE(IpNet::parse("10.0.0.0/"));
	CHECK_FALSE(IpNet::parse("10.0.0.0/-1"));
	CHECK_FALSE(IpNet::parse("10.0.0.0/8x"));
	CHECK_FALSE(IpNet::parse("::/129"));
	CHECK_FALSE(IpNet::parse("nonsense/8"));
}

TEST_CASE("to_sockaddr round-trips through from_sockaddr, with the port") {
	sockaddr_storage ss;
	auto v4 = IpAddr::parse("192.0.2.7");
	REQUIRE(v4);
	CHECK(v4->to_sockaddr(24, ss) == sizeof(sockaddr_in));
	CHECK(ss.ss_family == AF_INET);
	CHECK(ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port) == 24);
	CHECK(IpAddr::from_sockaddr(reinterpret_cast<sockaddr*>(&ss)) == v4);
	auto v6 = IpAddr::parse("2001:db8::1");
	REQUIRE(v6);
	CHECK(v6->to_sockaddr(2525, ss) == sizeof(sockaddr_in6));
	CHECK(ss.ss_family == AF_INET6);
	CHECK(ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port) == 2525);
	CHECK(IpAddr::from_sockaddr(reinterpret_cast<sockaddr*>(&ss)) == v6);
}

TEST_CASE("an IPv4 address is written as inet_ntop writes it") {
	// Every value of each byte, in every position, against the C library.
	for (int position = 0; position < 4; position++) {
		for (int value = 0; value < 256; value++) {
			IpAddr ip;
			ip.bytes[0] = 192;
			ip.bytes[1] = 0;
			ip.bytes[2] = 2;
			ip.bytes[3] = 1;
			ip.bytes[position] = static_cast<uint8_t>(value);
			char expected[INET_ADDRSTRLEN];
			REQUIRE(inet_ntop(AF_INET, ip.bytes.data(), expected, sizeof expected));
			CHECK(ip.to_string() == expected);
			CHECK(ip.to_literal() == "[" + std::string(expected) + "]");
		}
	}
	IpAddr widest;
	widest.bytes[0] = widest.bytes[1] = widest.bytes[2] = widest.bytes[3] = 255;
	CHECK(widest.to_string() == "255.255.255.255");
}
