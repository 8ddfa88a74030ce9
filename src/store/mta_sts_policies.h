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

// Replaces the domain's policy and deletes the rows of `dropped`.
inline void sts_policy_save(Env& env, const StoredStsPolicy& stored, const std::vector<std::string>& dropped = {}) {
	sts_policies_write(env, {stored}, dropped);
}

// Deletes the rows of `domains`.
inline void sts_policies_drop(Env& env, const std::vector<std::string>& domains) {
	sts_policies_write(env, {}, domains);
}

// Every policy that has not expired at `now`, at most `max_kept` of them:
// the latest fetched (D44). Expired ones, those beyond the bound and rows
// that cannot be read are deleted.
std::vector<StoredStsPolicy> sts_policies_load(Env& env, int64_t now, size_t max_kept = max_sts_policies);

// The row's text form (exposed for the unit tests).
std::string sts_policy_encode(const StoredStsPolicy& stored);
bool sts_policy_decode(std::string_view domain, std::string_view text, StoredStsPolicy& out);

}  // namespace tern::store
