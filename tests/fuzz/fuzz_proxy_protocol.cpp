// Fuzzes the PROXY protocol v1/v2 parser (net/proxy_protocol.h) the way the
// session uses it: called again after every read with all bytes so far.
// Invariants: the answer is monotonic over prefixes (need_more until done or
// invalid; once done, always done with the same header length; once
// invalid, always invalid), and a parsed header re-encoded with the
// builders parses back to the same addresses.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_common.h"
#include "net/proxy_protocol.h"

using namespace tern;

namespace {

bool same_header(const net::ProxyHeader& a, const net::ProxyHeader& b) {
	return a.local == b.local && a.source == b.source && a.destination == b.destination &&
	    a.source_port == b.source_port && a.destination_port == b.destination_port;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
	std::string_view input(reinterpret_cast<const char*>(data), size);

	net::ProxyHeader final_header;
	size_t final_consumed = 0;
	net::ProxyParse final_result = net::parse_proxy_header(input, final_header, final_consumed);
	if (final_result == net::ProxyParse::done) {
		FUZZ_CHECK(final_consumed > 0 && final_consumed <= size);
		// v1 is one short line; v2 is bounded by the TLV limit.
		FUZZ_CHECK(final_consumed <= std::max(net::proxy_v1_max_length,
		                                      net::proxy_v2_fixed_length + 216 + net::proxy_v2_max_tlv_bytes));
		if (!final_header.local) {
			FUZZ_CHECK(final_header.source.has_value() && final_header.destination.has_value());
		}
	}

	// Replay as successive reads: every prefix, up to a bound that covers
	// any v1 line and a v2 header with a little TLV data.
	size_t limit = std::min<size_t>(size, 600);
	net::ProxyParse previous = net::ProxyParse::need_more;
	size_t previous_consumed = 0;
	net::ProxyHeader previous_header;
	for (size_t n = 0; n <= limit; n++) {
		net::ProxyHeader header;
		size_t consumed = 0;
		net::ProxyParse result = net::parse_proxy_header(input.substr(0, n), header, consumed);
		if (previous == net::ProxyParse::invalid) FUZZ_CHECK(result == net::ProxyParse::invalid);
		if (previous == net::ProxyParse::done) {
			FUZZ_CHECK(result == net::ProxyParse::done);
			FUZZ_CHECK(consumed == previous_consumed);
			FUZZ_CHECK(same_header(header, previous_header));
		}
		if (result == net::ProxyParse::done) FUZZ_CHECK(consumed <= n);
		previous = result;
		previous_consumed = consumed;
		previous_header = header;
	}
	if (limit == size) FUZZ_CHECK(previous == final_result);

	// Round trip through the builders.
	if (final_result == net::ProxyParse::done && !final_header.local) {
		const IpAddr& src = *final_header.source;
		const IpAddr& dst = *final_header.destination;
		for (int version : {1, 2}) {
			std::string encoded = version == 1
			    ? net::make_proxy_v1(src, final_header.source_port, dst, final_header.destination_port)
			    : net::make_proxy_v2(src, final_header.source_port, dst, final_header.destination_port);
			net::ProxyHeader again;
			size_t consumed = 0;
			FUZZ_CHECK(net::parse_proxy_header(encoded, again, consumed) == net::ProxyParse::done);
			FUZZ_CHECK(consumed == encoded.size());
			FUZZ_CHECK(again.source_port == final_header.source_port);
			FUZZ_CHECK(again.destination_port == final_header.destination_port);
		}
	}
	return 0;
}
