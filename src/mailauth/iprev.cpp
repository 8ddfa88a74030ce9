#include "mailauth/iprev.h"

#include <algorithm>
#include <memory>

#include "util/hex.h"

namespace tern::mailauth {

const char* iprev_status_name(IprevStatus s) {
	switch (s) {
	case IprevStatus::pass: return "pass";
	case IprevStatus::fail: return "fail";
	case IprevStatus::temperror: return "temperror";
	case IprevStatus::permerror: return "permerror";
	}
	return "temperror";
}

std::string reverse_dns_name(const IpAddr& ip) {
	std::string out;
	if (!ip.v6) {
		for (int i = 3; i >= 0; --i) out += std::to_string(ip.bytes[i]) + ".";
		return out + "in-addr.arpa";
	}
	for (int i = 15; i >= 0; --i) {
		append_hex_digits(out, ip.bytes[i] & 0xf, 1);
		out += '.';
		append_hex_digits(out, ip.bytes[i] >> 4, 1);
		out += '.';
	}
	return out + "ip6.arpa";
}

void iprev_lookup(Resolver& r, uint64_t owner, const IpAddr& ip, std::function<void(const IprevResult&)> done) {
	struct State {
		IprevResult result;
		size_t pending = 0;
		bool forward_error = false;
		bool finished = false;
		std::function<void(const IprevResult&)> done;
	};
	auto st = std::make_shared<State>();
	st->done = std::move(done);
	RrType forward_type = ip.v6 ? RrType::AAAA : RrType::A;
	std::string want = ip.to_string();
	r.query(owner, reverse_dns_name(ip), RrType::PTR, [&r, owner, st, forward_type, want](const DnsAnswer& ptr) {
		if (ptr.not_found() || (ptr.found() && ptr.records.empty())) {
			st->result.status = IprevStatus::permerror;
			st->done(st->result);
			return;
		}
		if (!ptr.found()) {
			st->result.status = IprevStatus::temperror;
			st->done(st->result);
			return;
		}
		size_t asked = std::min(ptr.records.size(), max_iprev_names);
		st->result.names.assign(ptr.records.begin(), ptr.records.begin() + static_cast<ptrdiff_t>(asked));
		st->pending = asked;
		for (const auto& name : st->result.names) {
			r.query(owner, name, forward_type, [st, name, want](const DnsAnswer& fwd) {
				if (st->finished) return;
				if (fwd.found()) {
					for (const auto& a : fwd.records) {
						auto parsed = IpAddr::parse(a);
						if (parsed && parsed->to_string() == want) {
							st->finished = true;
							st->result.status = IprevStatus::pass;
							st->result.name = name;
							st->done(st->result);
							return;
						}
					}
				} else if (!fwd.not_found()) {
					st->forward_error = true;
				}
				if (--st->pending == 0) {
					st->finished = true;
					st->result.status = st->forward_error ? IprevStatus::temperror
									      : IprevStatus::fail;
					st->done(st->result);
				}
			});
		}
	});
}

}  // namespace tern::mailauth
