// PROXY protocol v1/v2 header parsing and building (see proxy_protocol.h).
// Section numbers refer to haproxy's doc/proxy-protocol.txt.
#include "net/proxy_protocol.h"

#include <algorithm>
#include <cstring>
#include <netinet/in.h>
#include <stdexcept>

namespace tern::net {

namespace {

constexpr std::string_view v1_prefix = "PROXY ";
// Section 2.2: "\r\n\r\n\0\r\nQUIT\n"; it cannot start a v1 line or SMTP.
constexpr std::string_view v2_signature{"\r\n\r\n\0\r\nQUIT\n", 12};

constexpr uint8_t v2_version = 0x2;
constexpr uint8_t v2_cmd_local = 0x0;
constexpr uint8_t v2_cmd_proxy = 0x1;
constexpr uint8_t v2_family_unspec = 0x0;
constexpr uint8_t v2_family_inet = 0x1;
constexpr uint8_t v2_family_inet6 = 0x2;
constexpr uint8_t v2_family_unix = 0x3;
constexpr uint8_t v2_proto_unspec = 0x0;
constexpr uint8_t v2_proto_stream = 0x1;
constexpr uint8_t v2_proto_dgram = 0x2;

// Section 2.2: size of the address block for each address family.
size_t v2_address_length(uint8_t family) {
	switch (family) {
	case v2_family_inet: return 12;   // 2 x 4 bytes + 2 ports
	case v2_family_inet6: return 36;  // 2 x 16 bytes + 2 ports
	case v2_family_unix: return 216;  // 2 x 108 bytes of path
	default: return 0;
	}
}

// True when the bytes we have agree with the start of `expected`.
bool agrees_with_prefix(std::string_view have, std::string_view expected) {
	size_t n = std::min(have.size(), expected.size());
	return have.substr(0, n) == expected.substr(0, n);
}

uint8_t byte_at(std::string_view s, size_t i) { return static_cast<uint8_t>(s[i]); }

uint16_t be16_at(std::string_view s, size_t i) { return static_cast<uint16_t>(byte_at(s, i) << 8 | byte_at(s, i + 1)); }

void append_be16(std::string& s, uint16_t v) {
	s.push_back(static_cast<char>(v >> 8));
	s.push_back(static_cast<char>(v & 0xff));
}

// ---- version 1 ----

bool is_v1_protocol(std::string_view token) { return token == "TCP4" || token == "TCP6" || token == "UNKNOWN"; }

// Section 2.1: the port is "a decimal integer in the range [0..65535]
// inclusive. Heading zeroes are not permitted".
std::optional<uint16_t> parse_v1_port(std::string_view text) {
	if (text.empty() || text.size() > 5) return std::nullopt;
	if (text.size() > 1 && text[0] == '0') return std::nullopt;
	uint32_t value = 0;
	for (char c : text) {
		if (c < '0' || c > '9') return std::nullopt;
		value = value * 10 + static_cast<uint32_t>(c - '0');
	}
	if (value > 65535) return std::nullopt;
	return static_cast<uint16_t>(value);
}

// Section 2.1: an address field holds only what dotted quads and RFC 4291
// 2.2 text forms are made of. Checked here, byte by byte, because the C
// library's inet_pton stops at a NUL and would read "192.0.2.7\0junk" as
// 192.0.2.7 (found by fuzzing); the partial-line check uses the same set so
// that split reads and whole reads agree.
bool is_v1_address_char(char c) {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' || c == ':';
}

// Section 2.1: addresses in the family the protocol token declares. The C
// library's inet_pton (behind IpAddr::parse) already refuses leading zeros
// in dotted quads and anything but the RFC 4291 2.2 text forms.
std::optional<IpAddr> parse_v1_address(std::string_view text, bool tcp6) {
	if (!std::all_of(text.begin(), text.end(), is_v1_address_char)) return std::nullopt;
	bool has_colon = text.find(':') != std::string_view::npos;
	if (has_colon != tcp6) return std::nullopt;
	return IpAddr::parse(text);
}

// `line` is what follows "PROXY " up to (not including) the CRLF.
bool parse_v1_line(std::string_view line, ProxyHeader& out) {
	size_t space = line.find(' ');
	std::string_view protocol = line.substr(0, space);
	if (protocol == "UNKNOWN") {
		// Section 2.1: with UNKNOWN "the receiver must ignore anything
		// presented before the CRLF is found" and use the real endpoints.
		out.local = true;
		return true;
	}
	if (protocol != "TCP4" && protocol != "TCP6") return false;
	if (space == std::string_view::npos) return false;
	bool tcp6 = protocol == "TCP6";

	// Exactly four fields separated by exactly one space each.
	std::string_view fields[4];
	std::string_view rest = line.substr(space + 1);
	for (int i = 0; i < 4; i++) {
		size_t next = rest.find(' ');
		if (i < 3) {
			if (next == std::string_view::npos) return false;
			fields[i] = rest.substr(0, next);
			rest = rest.substr(next + 1);
		} else {
			if (next != std::string_view::npos) return false;
			fields[i] = rest;
		}
		if (fields[i].empty()) return false;
	}

	auto source = parse_v1_address(fields[0], tcp6);
	auto destination = parse_v1_address(fields[1], tcp6);
	auto source_port = parse_v1_port(fields[2]);
	auto destination_port = parse_v1_port(fields[3]);
	if (!source || !destination || !source_port || !destination_port) return false;
	out.local = false;
	out.source = source;
	out.destination = destination;
	out.source_port = *source_port;
	out.destination_port = *destination_port;
	return true;
}

// A v1 line without its CRLF yet: can more bytes still make it valid?
// Rejecting early means a peer that speaks SMTP (or garbage) at us is cut off
// at once instead of after the header timeout.
bool v1_partial_plausible(std::string_view buffered) {
	if (buffered.size() <= v1_prefix.size()) return true;  // the prefix itself was already checked
	std::string_view tail = buffered.substr(v1_prefix.size());
	size_t space = tail.find(' ');
	if (space == std::string_view::npos) {
		// The protocol token may still be growing (or be followed by "\r").
		std::string_view token = tail;
		if (!token.empty() && token.back() == '\r') return token.substr(0, token.size() - 1) == "UNKNOWN";
		// Still growing: the token must be the start of a protocol name, not
		// a name with more after it (found by fuzzing: "TCP6x\ry").
		auto starts = [&](std::string_view name) {
			return token.size() <= name.size() && agrees_with_prefix(token, name);
		};
		return starts("TCP4") || starts("TCP6") || starts("UNKNOWN");
	}
	std::string_view protocol = tail.substr(0, space);
	if (!is_v1_protocol(protocol)) return false;
	if (protocol == "UNKNOWN") return true;  // anything may follow until the CRLF
	std::string_view fields = tail.substr(space + 1);
	if (!fields.empty() && fields.back() == '\r') fields.remove_suffix(1);
	if (fields.find("  ") != std::string_view::npos || (!fields.empty() && fields[0] == ' ')) return false;
	if (std::count(fields.begin(), fields.end(), ' ') > 3) return false;
	for (char c : fields) {
		if (!is_v1_address_char(c) && c != ' ') return false;
	}
	return true;
}

ProxyParse parse_v1(std::string_view buffered, ProxyHeader& out, size_t& consumed) {
	if (!agrees_with_prefix(buffered, v1_prefix)) return ProxyParse::invalid;
	// Section 2.1: the whole line, CRLF included, fits in 107 bytes; a
	// receiver that has not seen the CRLF by then declares it invalid.
	std::string_view window = buffered.substr(0, proxy_v1_max_length);
	size_t crlf = window.find("\r\n");
	if (crlf == std::string_view::npos) {
		if (buffered.size() >= proxy_v1_max_length) return ProxyParse::invalid;
		return v1_partial_plausible(buffered) ? ProxyParse::need_more : ProxyParse::invalid;
	}
	// The prefix holds no CR, so the CRLF lies after it.
	ProxyHeader header;
	if (!parse_v1_line(buffered.substr(v1_prefix.size(), crlf - v1_prefix.size()), header))
		return ProxyParse::invalid;
	out = header;
	consumed = crlf + 2;
	return ProxyParse::done;
}

// ---- version 2 ----

std::optional<IpAddr> v2_ipv4_at(std::string_view s, size_t i) {
	sockaddr_in sin{};
	sin.sin_family = AF_INET;
	std::memcpy(&sin.sin_addr, s.data() + i, 4);
	return IpAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin));
}

std::optional<IpAddr> v2_ipv6_at(std::string_view s, size_t i) {
	// Through sockaddr_in6 so IPv4-mapped addresses come out as IPv4, as
	// they do for real peers.
	sockaddr_in6 sin6{};
	sin6.sin6_family = AF_INET6;
	std::memcpy(&sin6.sin6_addr, s.data() + i, 16);
	return IpAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6));
}

// Section 2.2.7: type (1 byte), length (2 bytes), value; they must tile the
// rest of the header exactly.
bool v2_tlvs_well_formed(std::string_view tlvs) {
	size_t pos = 0;
	while (pos < tlvs.size()) {
		if (tlvs.size() - pos < 3) return false;
		size_t length = be16_at(tlvs, pos + 1);
		if (length > tlvs.size() - pos - 3) return false;
		pos += 3 + length;
	}
	return true;
}

ProxyParse parse_v2(std::string_view buffered, ProxyHeader& out, size_t& consumed) {
	if (!agrees_with_prefix(buffered, v2_signature)) return ProxyParse::invalid;
	if (buffered.size() <= v2_signature.size()) return ProxyParse::need_more;

	// Section 2.2: high nibble version (must be 2), low nibble command;
	// "other values are unassigned and must not be emitted by senders.
	// Receivers must drop connections presenting unexpected values here."
	uint8_t version = byte_at(buffered, 12) >> 4;
	uint8_t command = byte_at(buffered, 12) & 0xf;
	if (version != v2_version || (command != v2_cmd_local && command != v2_cmd_proxy)) return ProxyParse::invalid;
	if (buffered.size() < 14) return ProxyParse::need_more;
	uint8_t family = byte_at(buffered, 13) >> 4;
	uint8_t transport = byte_at(buffered, 13) & 0xf;
	if (family > v2_family_unix || transport > v2_proto_dgram) return ProxyParse::invalid;
	// A datagram claim on our TCP listener is a lie or a misconfiguration.
	bool inet = family == v2_family_inet || family == v2_family_inet6;
	if (command == v2_cmd_proxy && inet && transport == v2_proto_dgram) return ProxyParse::invalid;
	if (buffered.size() < proxy_v2_fixed_length) return ProxyParse::need_more;

	size_t length = be16_at(buffered, 14);
	size_t address_length = v2_address_length(family);
	bool use_addresses = command == v2_cmd_proxy && inet && transport == v2_proto_stream;
	// Section 2.2: the receiver must check the length covers the addresses.
	if (use_addresses && length < address_length) return ProxyParse::invalid;
	// Our own bound (proxy_protocol.h): refuse before buffering it all.
	if (length > address_length + proxy_v2_max_tlv_bytes) return ProxyParse::invalid;
	if (buffered.size() < proxy_v2_fixed_length + length) return ProxyParse::need_more;

	std::string_view body = buffered.substr(proxy_v2_fixed_length, length);
	// LOCAL may carry a short body: section 2.2 says the receiver ignores
	// family and addresses then, so only a full address block has TLVs.
	if (body.size() >= address_length && !v2_tlvs_well_formed(body.substr(address_length)))
		return ProxyParse::invalid;

	ProxyHeader header;
	if (!use_addresses) {
		// LOCAL (health checks from the proxy itself), UNSPEC (section
		// 2.2: "the receiver should ignore address information") and UNIX
		// sockets tell us nothing usable: keep the real peer address.
		header.local = true;
	} else if (family == v2_family_inet) {
		header.source = v2_ipv4_at(body, 0);
		header.destination = v2_ipv4_at(body, 4);
		header.source_port = be16_at(body, 8);
		header.destination_port = be16_at(body, 10);
	} else {
		header.source = v2_ipv6_at(body, 0);
		header.destination = v2_ipv6_at(body, 16);
		header.source_port = be16_at(body, 32);
		header.destination_port = be16_at(body, 34);
	}
	if (!header.local && (!header.source || !header.destination)) return ProxyParse::invalid;
	out = header;
	consumed = proxy_v2_fixed_length + length;
	return ProxyParse::done;
}

// 16 bytes of the address, IPv4 as IPv4-mapped IPv6 (RFC 4291 2.5.5.2).
void append_ipv6_bytes(std::string& s, const IpAddr& ip) {
	if (ip.v6) {
		s.append(reinterpret_cast<const char*>(ip.bytes.data()), 16);
		return;
	}
	s.append(10, '\0');
	s.append(2, '\xff');
	s.append(reinterpret_cast<const char*>(ip.bytes.data()), 4);
}

std::string v1_address_text(const IpAddr& ip, bool as_v6) {
	if (as_v6 && !ip.v6) return "::ffff:" + ip.to_string();
	return ip.to_string();
}

std::string v2_fixed_part(uint8_t command, uint8_t family_transport, size_t length) {
	if (length > 0xffff) throw std::length_error("PROXY v2 header longer than 65535 bytes");
	std::string s(v2_signature);
	s.push_back(static_cast<char>(v2_version << 4 | command));
	s.push_back(static_cast<char>(family_transport));
	append_be16(s, static_cast<uint16_t>(length));
	return s;
}

}  // namespace

ProxyParse parse_proxy_header(std::string_view buffered, ProxyHeader& out, size_t& consumed) {
	if (buffered.empty()) return ProxyParse::need_more;
	// The first byte tells the versions apart: 'P' for v1, CR for v2.
	if (buffered[0] == v2_signature[0]) return parse_v2(buffered, out, consumed);
	return parse_v1(buffered, out, consumed);
}

bool proxy_source_trusted(const IpAddr& peer, const std::vector<IpNet>& trusted) {
	return std::any_of(trusted.begin(), trusted.end(), [&](const IpNet& net) { return net.contains(peer); });
}

std::string make_proxy_v1(const IpAddr& src, uint16_t sport, const IpAddr& dst, uint16_t dport) {
	bool as_v6 = src.v6 || dst.v6;
	std::string line = as_v6 ? "PROXY TCP6 " : "PROXY TCP4 ";
	line += v1_address_text(src, as_v6);
	line += ' ';
	line += v1_address_text(dst, as_v6);
	line += ' ';
	line += std::to_string(sport);
	line += ' ';
	line += std::to_string(dport);
	line += "\r\n";
	return line;
}

std::string make_proxy_v1_unknown() { return "PROXY UNKNOWN\r\n"; }

std::string make_proxy_v2(const IpAddr& src, uint16_t sport, const IpAddr& dst, uint16_t dport, std::string_view tlvs) {
	bool as_v6 = src.v6 || dst.v6;
	uint8_t family = as_v6 ? v2_family_inet6 : v2_family_inet;
	std::string s = v2_fixed_part(v2_cmd_proxy, family << 4 | v2_proto_stream,
	                              v2_address_length(family) + tlvs.size());
	if (as_v6) {
		append_ipv6_bytes(s, src);
		append_ipv6_bytes(s, dst);
	} else {
		s.append(reinterpret_cast<const char*>(src.bytes.data()), 4);
		s.append(reinterpret_cast<const char*>(dst.bytes.data()), 4);
	}
	append_be16(s, sport);
	append_be16(s, dport);
	s.append(tlvs);
	return s;
}

std::string make_proxy_v2_local(std::string_view tlvs) {
	std::string s = v2_fixed_part(v2_cmd_local, v2_family_unspec << 4 | v2_proto_unspec, tlvs.size());
	s.append(tlvs);
	return s;
}

std::string make_proxy_v2_tlv(uint8_t type, std::string_view value) {
	if (value.size() > 0xffff) throw std::length_error("PROXY v2 TLV longer than 65535 bytes");
	std::string s(1, static_cast<char>(type));
	append_be16(s, static_cast<uint16_t>(value.size()));
	s.append(value);
	return s;
}

}  // namespace tern::net
