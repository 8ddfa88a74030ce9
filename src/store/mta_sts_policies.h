// MTA-STS policies (RFC 8461) the queue fetched, kept in the database for
// their max_age, so that a restart does not forget them (RFC 8461 5.1: a
// cached policy defends against a downgrade of the next fetch), for at
// most max_sts_policies domains (doc/behaviour.md D44). Blocking:
// worker threads or ternctl.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "mailauth/mta_sts.h"
#include "store/db.h"

namespace tern::store {

struct StoredStsPolicy {
	std::string domain;  // lower case
	std::string id;      // the TXT record's id the policy was fetched for
	mailauth::mta_sts::Policy policy;
	int64_t expires = 0;  // unix seconds: fetched + max_age
};

// doc/behaviour.md D44: the most domains whose policies are kept, in
// memory and in the table.
constexpr size_t max_sts_policies = 1000;

// When the policy was fetched (unix seconds).
inline int64_t sts_policy_fetched(const StoredStsPolicy& stored) { return stored.expires - stored.policy.max_age; }

// Deletes the rows of `dropped` (domains whose policies are no longer
// kept) and replaces the policies of `saved`, in one transaction.
void sts_policies_write(Env& env, const std::vector<StoredStsPolicy>& saved, const std::vector<std::string>& dropped);

// Every policy that has not expired at `now`; expired ones and rows that
// cannot be read are deleted. The bound (D44) is the cache's to keep
// (queue/sts_cache.h): what it drops of these comes back to be deleted.
std::vector<StoredStsPolicy> sts_policies_load(Env& env, int64_t now);

// The row's text form (exposed for the unit tests).
std::string sts_policy_encode(const StoredStsPolicy& stored);
bool sts_policy_decode(std::string_view domain, std::string_view text, StoredStsPolicy& out);

}  // namespace tern::store
