// MTA-STS policies (RFC 8461) the queue fetched, kept in the database for
// their max_age, so that a restart does not forget them (RFC 8461 5.1: a
// cached policy defends against a downgrade of the next fetch). Blocking:
// worker threads or ternctl.
#pragma once
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

// Replaces the domain's policy.
void sts_policy_save(Env& env, const StoredStsPolicy& stored);

// Every policy that has not expired at `now`; expired ones, and rows that
// cannot be read, are deleted.
std::vector<StoredStsPolicy> sts_policies_load(Env& env, int64_t now);

// The row's text form (exposed for the unit tests).
std::string sts_policy_encode(const StoredStsPolicy& stored);
bool sts_policy_decode(std::string_view domain, std::string_view text, StoredStsPolicy& out);

}  // namespace tern::store
