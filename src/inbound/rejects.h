// The Rejects mailbox rules (doc/behaviour.md §9 "Rejects"): a refused
// message is kept, flagged Seen, so the user can find a false positive; one
// copy per message; without keep_rejects the mailbox tidies itself.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tern::inbound {

constexpr int64_t rejects_max_age_s = 14 * 24 * 3600;
constexpr size_t rejects_max_count = 1000;

// A copy already in the Rejects mailbox.
struct RejectCopy {
	std::string unique_name;  // Maildir unique name
	std::string message_id;   // may be empty
	std::string sha256;       // of the received data, hex
	int64_t received = 0;
};

struct RejectsPlan {
	bool store = false;               // store the new copy
	bool duplicate = false;           // not stored: already there
	std::vector<std::string> remove;  // unique names of copies to remove first
};

// What to do with a refused message with this Message-ID and hash.
RejectsPlan plan_reject(const std::vector<RejectCopy>& present, const std::string& message_id,
                        const std::string& sha256, bool keep_rejects, int64_t now);

// Copies to remove from Rejects when a message with this Message-ID was
// delivered after all (a sender that retried after a temporary refusal).
std::vector<std::string> rejects_superseded(const std::vector<RejectCopy>& present, const std::string& message_id);

}  // namespace tern::inbound
