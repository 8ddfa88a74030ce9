#include "queue/sts_cache.h"

#include <algorithm>

#include "util/log.h"
#include "util/strings.h"

namespace tern::queue {

const store::StoredStsPolicy* StsCache::find(const std::string& domain, int64_t now) {
	auto it = kept_.find(ascii_lower(domain));
	if (it == kept_.end() || it->second.stored.expires <= now) return nullptr;
	it->second.used = now;
	return &it->second.stored;
}

const store::StoredStsPolicy& StsCache::put(store::StoredStsPolicy stored, int64_t now,
                                            std::vector<std::string>& dropped) {
	// The domain's old policy is replaced, not dropped: its row is
	// overwritten.
	kept_.erase(stored.domain);
	make_room(max_domains_ > 0 ? max_domains_ - 1 : 0, now, dropped);
	std::string domain = stored.domain;
	Kept& kept = kept_[domain];
	kept = Kept{std::move(stored), now};
	return kept.stored;
}

std::vector<std::string> StsCache::add_loaded(std::vector<store::StoredStsPolicy> loaded, int64_t now) {
	for (store::StoredStsPolicy& stored : loaded) {
		const int64_t fetched = store::sts_policy_fetched(stored);
		std::string domain = stored.domain;
		kept_.try_emplace(std::move(domain), Kept{std::move(stored), fetched});
	}
	std::vector<std::string> dropped;
	if (kept_.size() > max_domains_) make_room(max_domains_, now, dropped);
	return dropped;
}

void StsCache::make_room(size_t room, int64_t now, std::vector<std::string>& dropped) {
	// Expired policies go whenever the cache changes, so it holds only
	// domains mailed within their max_age.
	std::erase_if(kept_, [&](const auto& entry) {
		if (entry.second.stored.expires > now) return false;
		dropped.push_back(entry.first);
		return true;
	});
	while (kept_.size() > room) {
		// D44: RFC 8461 10.2's downgrade needs the policy to be missing
		// when its domain is mailed next; the domain mailed longest ago is
		// the least likely to be.
		auto oldest = std::min_element(kept_.begin(), kept_.end(), [](const auto& a, const auto& b) {
			return a.second.used < b.second.used;
		});
		log::info("queue: MTA-STS policy dropped, least recently used of too many",
		          {{"domain", oldest->first}, {"kept", std::to_string(max_domains_)}});
		dropped.push_back(oldest->first);
		kept_.erase(oldest);
	}
}

}  // namespace tern::queue
