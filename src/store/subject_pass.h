// Subject-pass per account (doc/behaviour.md §9, steps 8 and 12): the
// account's secret key, kept in the database and made on first use, and
// the analysis's subject-pass input for one message. Blocking: worker
// threads or ternctl.
#pragma once
#include <cstdint>
#include <string>

#include "config/config.h"
#include "inbound/analyze.h"
#include "store/db.h"
#include "store/files.h"

namespace tern::store {

// The account's 32-byte subject-pass key; the first call makes it.
std::string subject_pass_key(Env& env, const std::string& account);

// The verdict's subject-pass input (inbound::SubjectPassFacts) for the
// message in `message_file` to `account`, at `now`: configured when the
// account has a subject_pass period; token_valid when the Subject holds
// `(pass:TOKEN)` made for the message's From address within the period;
// new_token, a fresh token for that address, for the 550 that offers it.
// Without a single parsable From address, or when the key cannot be read
// (logged), nothing is configured: no token is offered or honoured.
inbound::SubjectPassFacts subject_pass_facts(Env* env, const config::Account& account, const ReadableFile& message_file,
                                             int64_t now);

}  // namespace tern::store
