#include "mailauth/resolver.h"

#include <memory>

#include "util/strings.h"

namespace tern::mailauth {

namespace {
std::string canonical_name(std::string name) {
	if (!name.empty() && name.back() == '.') name.pop_back();
	return ascii_lower(name);
}
}  // namespace

void CannedResolver::set(const std::string& name, RrType type, DnsAnswer answer) {
	answers_[{canonical_name(name), type}] = std::move(answer);
}

void CannedResolver::set_records(const std::string& name, RrType type, std::vector<std::string> records) {
	DnsAnswer a;
	a.status = records.empty() ? DnsStatus::nodata : DnsStatus::ok;
	a.records = std::move(records);
	set(name, type, std::move(a));
}

void CannedResolver::set_mx(const std::string& name, std::vector<MxRecord> mx) {
	DnsAnswer a;
	a.status = mx.empty() ? DnsStatus::nodata : DnsStatus::ok;
	a.mx = std::move(mx);
	set(name, RrType::MX, std::move(a));
}

void CannedResolver::query(uint64_t, const std::string& name, RrType type, Callback cb) {
	++queries_;
	auto it = answers_.find({canonical_name(name), type});
	if (it != answers_.end()) {
		cb(it->second);
		return;
	}
	// A name with an answer of another type exists: no data. Otherwise NXDOMAIN.
	std::string n = canonical_name(name);
	for (const auto& [key, _] : answers_) {
		if (std::get<0>(key) == n) {
			cb(DnsAnswer{DnsStatus::nodata, {}, {}});
			return;
		}
	}
	cb(DnsAnswer{DnsStatus::nxdomain, {}, {}});
}

}  // namespace tern::mailauth

namespace tern::mailauth {

void lookup_ip_addr(Resolver& r, uint64_t owner, const std::string& name, std::function<void(const IpLookup&)> done) {
	struct State {
		int pending = 2;
		DnsAnswer a, aaaa;
		std::function<void(const IpLookup&)> done;
	};
	auto st = std::make_shared<State>();
	st->done = std::move(done);
	auto finish = [st] {
		if (--st->pending != 0) return;
		IpLookup out;
		for (const auto* ans : {&st->a, &st->aaaa})
			out.addresses.insert(out.addresses.end(), ans->records.begin(), ans->records.end());
		if (!out.addresses.empty())
			out.status = DnsStatus::ok;
		else if (st->a.not_found() && st->aaaa.not_found())
			out.status = st->a.status == DnsStatus::nxdomain ? DnsStatus::nxdomain : DnsStatus::nodata;
		else
			out.status = st->a.not_found() ? st->aaaa.status : st->a.status;
		st->done(out);
	};
	r.query(owner, name, RrType::A, [st, finish](const DnsAnswer& ans) {
		st->a = ans;
		finish();
	});
	r.query(owner, name, RrType::AAAA, [st, finish](const DnsAnswer& ans) {
		st->aaaa = ans;
		finish();
	});
}

}  // namespace tern::mailauth
