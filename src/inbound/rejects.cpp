#include "inbound/rejects.h"

namespace tern::inbound {

RejectsPlan plan_reject(const std::vector<RejectCopy>& present, const std::string& message_id,
                        const std::string& sha256, bool keep_rejects, int64_t now) {
	RejectsPlan plan;
	for (const auto& c : present) {
		if ((!message_id.empty() && c.message_id == message_id) || (!sha256.empty() && c.sha256 == sha256)) {
			plan.duplicate = true;
			return plan;
		}
	}
	size_t remaining = present.size();
	if (!keep_rejects) {
		for (const auto& c : present) {
			if (now - c.received > rejects_max_age_s) {
				plan.remove.push_back(c.unique_name);
				--remaining;
			}
		}
		// A mailbox that still holds this many recent rejects is being
		// flooded; storing more would only fill the disk.
		if (remaining >= rejects_max_count) return plan;
	}
	plan.store = true;
	return plan;
}

std::vector<std::string> rejects_superseded(const std::vector<RejectCopy>& present, const std::string& message_id) {
	std::vector<std::string> out;
	if (message_id.empty()) return out;
	for (const auto& c : present)
		if (c.message_id == message_id) out.push_back(c.unique_name);
	return out;
}

}  // namespace tern::inbound
