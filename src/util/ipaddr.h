// IPv4/IPv6 addresses as values: parsing, formatting, masking (for the
// per-network limiters of doc/behaviour.md §10).
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>

namespace tern {

struct IpAddr {
	bool v6 = false;
	// IPv4 uses bytes[0..3]; IPv6 all 16. IPv4-mapped IPv6 is stored as IPv4.
	std::array<uint8_t, 16> bytes{};

	static std::optional<IpAddr> parse(std::string_view text);  // "1.2.3.4" or "::1"
	static std::optional<IpAddr> from_sockaddr(const sockaddr* sa);
	// The socket address of this address and `port` (for connect); returns
	// its length.
	socklen_t to_sockaddr(int port, sockaddr_storage& out) const;
	std::string to_string() const;  // canonical text form
	// `[1.2.3.4]` or `[IPv6:::1]` (RFC 5321 4.1.3 address literal).
	std::string to_literal() const;
	IpAddr masked(int prefix_bits) const;
	// 0.0.0.0 or :: (RFC 4291 2.5.2): a socket bound there is a wildcard.
	bool unspecified() const;
	// 127.0.0.0/8 (RFC 1122 3.2.1.3 (g)) or ::1 (RFC 4291 2.5.3): an
	// address that never leaves the host.
	bool loopback() const;
	// An address of a private network, reached without leaving the site:
	// 10/8, 172.16/12, 192.168/16 (RFC 1918 3), 100.64/10 (RFC 6598 7),
	// 169.254/16 (RFC 3927 2.1), fc00::/7 (RFC 4193 3.1), fe80::/10
	// (RFC 4291 2.5.6).
	bool local_network() const;
	bool operator==(const IpAddr&) const = default;
};

// A CIDR range such as "10.0.0.0/8" or "2001:db8::/32".
struct IpNet {
	IpAddr base;
	int prefix = 0;
	static std::optional<IpNet> parse(std::string_view text);
	bool contains(const IpAddr&) const;
};

}  // namespace tern
