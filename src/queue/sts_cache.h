// The MTA-STS policies (RFC 8461) the queue keeps in memory, by domain
// (lower case), each with when it was last used, bounded as
// doc/behaviour.md D44 says: at most a number of domains, the least
// recently used dropped first to make room, but never the policy of a
// domain with mail in the queue (only its max_age ends that one). The
// table in the database (store/mta_sts_policies.h) holds the same domains:
// what is dropped here is handed back to be deleted there. Loop thread
// only, no I/O.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "store/mta_sts_policies.h"

namespace tern::queue {

class StsCache {
public:
	// Whether the queue holds mail for the domain (lower case): asked of
	// the domains kept when room is needed, so it must answer from memory.
	using HasQueuedMail = std::function<bool(const std::string& domain)>;

	explicit StsCache(size_t max_domains = store::max_sts_policies) : max_domains_(max_domains) {}

	// The domain's policy unless its max_age has passed at `now` (then
	// none: RFC 8461 5.1); a policy found counts as used at `now`.
	const store::StoredStsPolicy* find(const std::string& domain, int64_t now);
	// A policy just fetched, in place of its domain's; returns it as kept.
	// The domains dropped meanwhile (every expired policy, then the least
	// recently used without queued mail while there is no room) are added
	// to `dropped`. When every domain kept has queued mail, none is dropped
	// and the cache holds more than its bound until their mail has left
	// the queue and a later policy is kept (D44): dropping one of theirs,
	// or not keeping the new one, would leave mail already accepted open
	// at its next attempt to the blocked fetch the policy is kept against
	// (RFC 8461 10.2), and the excess is bounded by the queue itself (one
	// policy per domain with a queued message on disk, of at most 100
	// patterns, D43).
	const store::StoredStsPolicy& put(store::StoredStsPolicy stored, int64_t now,
	                                  const HasQueuedMail& has_queued_mail, std::vector<std::string>& dropped);
	// Policies read from the database: one whose domain is here already
	// (fetched meanwhile) stays as it is; a policy read counts as used when
	// it was fetched. Returns the domains dropped to stay within the bound,
	// as put() chooses them.
	std::vector<std::string> add_loaded(std::vector<store::StoredStsPolicy> loaded, int64_t now,
	                                    const HasQueuedMail& has_queued_mail);
	size_t size() const { return kept_.size(); }

private:
	struct Kept {
		store::StoredStsPolicy stored;
		int64_t used = 0;  // unix seconds
	};
	using KeptIterator = std::map<std::string, Kept>::iterator;
	// Drops the expired policies, then the least recently used of domains
	// without queued mail until at most `room` are left or none such is.
	void make_room(size_t room, int64_t now, const HasQueuedMail& has_queued_mail,
	               std::vector<std::string>& dropped);
	// The domains without queued mail, at most `count` of them, the least
	// recently used first.
	std::vector<KeptIterator> least_recently_used_without_queued_mail(size_t count,
	                                                                  const HasQueuedMail& has_queued_mail);
	void log_if_beyond_bound() const;

	size_t max_domains_;
	std::map<std::string, Kept> kept_;
};

}  // namespace tern::queue
