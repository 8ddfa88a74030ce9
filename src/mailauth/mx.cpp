#include "mailauth/mx.h"

#include <memory>
#include <vector>

namespace tern::mailauth {

namespace {
struct MxCheck : std::enable_shared_from_this<MxCheck> {
	Resolver& resolver;
	uint64_t owner;
	std::vector<std::string> hosts;
	size_t next = 0;
	bool saw_error = false;
	std::function<void(MxVerdict)> done;

	MxCheck(Resolver& r, uint64_t o, std::function<void(MxVerdict)> d)
		: resolver(r), owner(o), done(std::move(d)) {}

	// Looks up the hosts one after the other; the first with an address
	// settles it (step 4).
	void try_next_host() {
		if (next == hosts.size()) {
			done(saw_error ? MxVerdict::temporary_error : MxVerdict::no_mail);
			return;
		}
		const std::string& host = hosts[next++];
		auto self = shared_from_this();
		lookup_ip_addr(resolver, owner, host, [self](const IpLookup& l) {
			if (l.status == DnsStatus::ok) {
				self->done(MxVerdict::accepts_mail);
				return;
			}
			if (l.status != DnsStatus::nxdomain && l.status != DnsStatus::nodata) self->saw_error = true;
			self->try_next_host();
		});
	}
};
}  // namespace

void check_mx_records(Resolver& r, uint64_t owner, const std::string& domain, std::function<void(MxVerdict)> done) {
	auto check = std::make_shared<MxCheck>(r, owner, std::move(done));
	r.query(owner, domain, RrType::MX, [check, domain](const DnsAnswer& ans) {
		if (ans.found()) {
			// RFC 7505 3: a single MX "." says the domain takes no mail. A null
			// MX among other records is ignored, as the model does.
			if (ans.mx.size() == 1 && ans.mx[0].host.empty()) {
				check->done(MxVerdict::no_mail);
				return;
			}
			for (const auto& mx : ans.mx)
				if (!mx.host.empty()) check->hosts.push_back(mx.host);
		} else if (!ans.not_found()) {
			check->done(MxVerdict::temporary_error);
			return;
		} else {
			// RFC 5321 5.1: no MX records, the domain itself is the implicit MX.
			check->hosts.push_back(domain);
		}
		check->try_next_host();
	});
}

}  // namespace tern::mailauth
