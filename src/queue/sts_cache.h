// The MTA-STS policies (RFC 8461) the queue keeps in memory, by domain
// (lower case), each with when it was last used, bounded as
// doc/behaviour.md D44 says: at most a number of domains, the least
// recently used dropped first to make room. The table in the database
// (store/mta_sts_policies.h) holds the same domains: what is dropped here
// is handed back to be deleted there. Loop thread only, no I/O.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "store/mta_sts_policies.h"

namespace tern::queue {

class StsCache {
public:
	explicit StsCache(size_t max_domains = store::max_sts_policies) : max_domains_(max_domains) {}

	// The domain's policy unless its max_age has passed at `now` (then
	// none: RFC 8461 5.1); a policy found counts as used at `now`.
	const store::StoredStsPolicy* find(const std::string& domain, int64_t now);
	// A policy just fetched, in place of its domain's; returns it as kept.
	// The domains dropped meanwhile (every expired policy, then the least
	// recently used while there is no room) are added to `dropped`.
	const store::StoredStsPolicy& put(store::StoredStsPolicy stored, int64_t now,
	                                  std::vector<std::string>& dropped);
	// Policies read from the database: one whose domain is here already
	// (fetched meanwhile) stays as it is; a policy read counts as used when
	// it was fetched. Returns the domains dropped to stay within the bound.
	std::vector<std::string> add_loaded(std::vector<store::StoredStsPolicy> loaded, int64_t now);
	size_t size() const { return kept_.size(); }

private:
	struct Kept {
		store::StoredStsPolicy stored;
		int64_t used = 0;  // unix seconds
	};
	// Drops the expired policies, then the least recently used until at
	// most `room` are left.
	void make_room(size_t room, int64_t now, std::vector<std::string>& dropped);

	size_t max_domains_;
	std::map<std::string, Kept> kept_;
};

}  // namespace tern::queue
