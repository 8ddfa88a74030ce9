// IPv4/IPv6 address values (see ipaddr.h). Text conversion goes through
// inet_pton/inet_ntop so we accept exactly the forms the C library does
// (dotted quad without leading zeros, RFC 4291 2.2 IPv6 text forms); an
// IPv4 address is written without it, in the same form.
#include "util/ipaddr.h"

#include <arpa/inet.h>
#include <charconv>
#include <cstring>
#include <netinet/in.h>

namespace tern {

namespace {

// RFC 4291 2.5.5.2: ::ffff:a.b.c.d is an IPv4 address carried in IPv6; we
// keep one representation so comparisons and limiter keys agree.
bool is_v4_mapped(const uint8_t* b) {
	for (int i = 0; i < 10; i++)
		if (b[i] != 0) return false;
	return b[10] == 0xff && b[11] == 0xff;
}

IpAddr from_v4_bytes(const uint8_t* b) {
	IpAddr ip;
	ip.v6 = false;
	std::memcpy(ip.bytes.data(), b, 4);
	return ip;
}

IpAddr from_v6_bytes(const uint8_t* b) {
	if (is_v4_mapped(b)) return from_v4_bytes(b + 12);
	IpAddr ip;
	ip.v6 = true;
	std::memcpy(ip.bytes.data(), b, 16);
	return ip;
}

int address_bits(const IpAddr& ip) { return ip.v6 ? 128 : 32; }

}  // namespace

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
	// inet_pton needs a NUL-terminated string; the longest valid IPv6 text is
	// 45 characters, so anything longer is not an address.
	if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
	std::string s(text);
	uint8_t buf[16];
	if (s.find(':') == std::string::npos) {
		if (inet_pton(AF_INET, s.c_str(), buf) != 1) return std::nullopt;
		return from_v4_bytes(buf);
	}
	if (inet_pton(AF_INET6, s.c_str(), buf) != 1) return std::nullopt;
	return from_v6_bytes(buf);
}

std::optional<IpAddr> IpAddr::from_sockaddr(const sockaddr* sa) {
	if (sa == nullptr) return std::nullopt;
	if (sa->sa_family == AF_INET) {
		sockaddr_in sin;
		std::memcpy(&sin, sa, sizeof sin);
		return from_v4_bytes(reinterpret_cast<const uint8_t*>(&sin.sin_addr));
	}
	if (sa->sa_family == AF_INET6) {
		sockaddr_in6 sin6;
		std::memcpy(&sin6, sa, sizeof sin6);
		return from_v6_bytes(reinterpret_cast<const uint8_t*>(&sin6.sin6_addr));
	}
	return std::nullopt;
}

socklen_t IpAddr::to_sockaddr(int port, sockaddr_storage& out) const {
	out = sockaddr_storage{};
	if (!v6) {
		auto* sin = reinterpret_cast<sockaddr_in*>(&out);
		sin->sin_family = AF_INET;
		sin->sin_port = htons(static_cast<uint16_t>(port));
		std::memcpy(&sin->sin_addr, bytes.data(), 4);
		return sizeof *sin;
	}
	auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out);
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(static_cast<uint16_t>(port));
	std::memcpy(&sin6->sin6_addr, bytes.data(), 16);
	return sizeof *sin6;
}

bool IpAddr::unspecified() const {
	size_t size = v6 ? 16 : 4;
	for (size_t i = 0; i < size; ++i)
		if (bytes[i] != 0) return false;
	return true;
}

bool IpAddr::loopback() const {
	if (!v6) return bytes[0] == 127;
	for (size_t i = 0; i < 15; ++i)
		if (bytes[i] != 0) return false;
	return bytes[15] == 1;
}

bool IpAddr::local_network() const {
	if (!v6)
		return bytes[0] == 10 || (bytes[0] == 172 && (bytes[1] & 0xf0) == 16) ||
		    (bytes[0] == 192 && bytes[1] == 168) || (bytes[0] == 100 && (bytes[1] & 0xc0) == 64) ||
		    (bytes[0] == 169 && bytes[1] == 254);
	return (bytes[0] & 0xfe) == 0xfc || (bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80);
}

std::string IpAddr::to_string() const {
	if (!v6) {
		// Dotted quad written here: inet_ntop formats IPv4 through sprintf,
		// and the session writes its peer's address several times per
		// message (log lines, Received, Authentication-Results, history).
		char buf[16];
		char* p = buf;
		for (int i = 0; i < 4; i++) {
			if (i) *p++ = '.';
			p = std::to_chars(p, buf + sizeof buf, bytes[i]).ptr;
		}
		return std::string(buf, p);
	}
	char buf[INET6_ADDRSTRLEN];
	const char* r = inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
	return r ? std::string(r) : std::string();
}

// RFC 5321 4.1.3: IPv4-address-literal / "IPv6:" IPv6-addr.
std::string IpAddr::to_literal() const { return v6 ? "[IPv6:" + to_string() + "]" : "[" + to_string() + "]"; }

IpAddr IpAddr::masked(int prefix_bits) const {
	int total = address_bits(*this);
	if (prefix_bits < 0) prefix_bits = 0;
	if (prefix_bits > total) prefix_bits = total;
	IpAddr out = *this;
	int nbytes = total / 8;
	for (int i = 0; i < nbytes; i++) {
		int keep = prefix_bits - i * 8;  // bits of this byte that survive
		if (keep >= 8) continue;
		if (keep <= 0)
			out.bytes[i] = 0;
		else
			out.bytes[i] &= static_cast<uint8_t>(0xff << (8 - keep));
	}
	return out;
}

// "addr/bits"; a bare address is taken as a single-host network.
std::optional<IpNet> IpNet::parse(std::string_view text) {
	size_t slash = text.find('/');
	auto addr = IpAddr::parse(text.substr(0, slash));
	if (!addr) return std::nullopt;
	int bits = address_bits(*addr);
	if (slash != std::string_view::npos) {
		std::string_view num = text.substr(slash + 1);
		if (num.empty() || num.size() > 3) return std::nullopt;
		int n = 0;
		auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
		if (ec != std::errc() || end != num.data() + num.size() || n < 0 || n > bits) return std::nullopt;
		bits = n;
	}
	IpNet net;
	net.base = addr->masked(bits);
	net.prefix = bits;
	return net;
}

bool IpNet::contains(const IpAddr& ip) const { return ip.v6 == base.v6 && ip.masked(prefix) == base; }

}  // namespace tern
