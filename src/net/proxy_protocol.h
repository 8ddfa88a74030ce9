// HAProxy PROXY protocol, versions 1 (text) and 2 (binary), as a pure
// incremental parser: the session accumulates the first bytes of a
// connection on a `proxy_protocol` listener and asks, after every read,
// whether they form a complete header yet. No socket I/O happens here.
//
// Specification: https://www.haproxy.org/download/2.4/doc/proxy-protocol.txt
// (section numbers below refer to it).
//
// doc/behaviour.md "PROXY protocol": on a proxy_protocol listener the header is mandatory; a peer
// outside `trusted_proxies`, or a malformed header, gets the connection
// closed without a greeting; every per-IP decision uses the claimed client.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/ipaddr.h"

namespace tern::net {

// The longest v1 line, CRLF included (section 2.1: "107 bytes max").
inline constexpr size_t proxy_v1_max_length = 107;
// v2 fixed part: 12-byte signature, ver/cmd, family, 16-bit length.
inline constexpr size_t proxy_v2_fixed_length = 16;
// We accept at most this many bytes of TLVs after the address block of a v2
// header. The protocol allows up to 65535 bytes; a mail server needs none of
// them (we skip them all), so the bound keeps per-connection memory small.
inline constexpr size_t proxy_v2_max_tlv_bytes = 4096;

struct ProxyHeader {
	// v2 LOCAL command, v2 UNSPEC/UNIX family, or v1 "UNKNOWN": the proxy
	// tells us nothing about a client; use the real peer address.
	bool local = false;
	std::optional<IpAddr> source, destination;
	uint16_t source_port = 0, destination_port = 0;
};

enum class ProxyParse {
	need_more,  // `buffered` is a prefix of a header that could still be valid
	done,       // `out` and `consumed` are set
	invalid,    // cannot become a valid header: close the connection
};

// Looks at the bytes received so far. On `done`, `consumed` is the header
// length; the bytes after it belong to the SMTP session. `out` and
// `consumed` are only written on `done`.
ProxyParse parse_proxy_header(std::string_view buffered, ProxyHeader& out, size_t& consumed);

// True when `peer` (the real TCP peer) lies in one of the `trusted` ranges.
bool proxy_source_trusted(const IpAddr& peer, const std::vector<IpNet>& trusted);

// Header builders, for tests and tools. When the two addresses are of
// different families both are written as IPv6 (IPv4-mapped, RFC 4291
// 2.5.5.2), since one header carries a single family.
std::string make_proxy_v1(const IpAddr& src, uint16_t sport, const IpAddr& dst, uint16_t dport);
std::string make_proxy_v1_unknown();  // "PROXY UNKNOWN\r\n"
// v2 PROXY command over STREAM; `tlvs` is appended as-is after the
// addresses (pre-encoded, e.g. with make_proxy_v2_tlv) and counted in the
// length field.
std::string make_proxy_v2(const IpAddr& src, uint16_t sport, const IpAddr& dst, uint16_t dport,
                          std::string_view tlvs = {});
// v2 LOCAL command, family UNSPEC (what a proxy sends for health checks).
std::string make_proxy_v2_local(std::string_view tlvs = {});
// One v2 TLV: type, 16-bit big-endian length, value (section 2.2.7).
std::string make_proxy_v2_tlv(uint8_t type, std::string_view value);

}  // namespace tern::net
