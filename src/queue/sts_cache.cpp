#include "queue/sts_cache.h"

#include <algorithm>
#include <tuple>

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
                                            const HasQueuedMail& has_queued_mail, std::vector<std::string>& dropped) {
	// The domain's old policy is replaced, not dropped: its row is
	// overwritten.
	kept_.erase(stored.domain);
	make_room(max_domains_ > 0 ? max_domains_ - 1 : 0, now, has_queued_mail, dropped);
	std::string domain = stored.domain;
	Kept& kept = kept_[domain];
	kept = Kept{std::move(stored), now};
	log_if_beyond_bound();
	return kept.stored;
}

std::vector<std::string> StsCache::add_loaded(std::vector<store::StoredStsPolicy> loaded, int64_t now,
                                              const HasQueuedMail& has_queued_mail) {
	for (store::StoredStsPolicy& stored : loaded) {
		const int64_t fetched = store::sts_policy_fetched(stored);
		std::string domain = stored.domain;
		kept_.try_emplace(std::move(domain), Kept{std::move(stored), fetched});
	}
	std::vector<std::string> dropped;
	if (kept_.size() > max_domains_) make_room(max_domains_, now, has_queued_mail, dropped);
	log_if_beyond_bound();
	return dropped;
}

void StsCache::make_room(size_t room, int64_t now, const HasQueuedMail& has_queued_mail,
                         std::vector<std::string>& dropped) {
	// Expired policies go whenever the cache changes, so it holds only
	// domains mailed within their max_age; a domain with queued mail
	// included, as its policy is no longer in force (RFC 8461 5.1).
	std::erase_if(kept_, [&](const auto& entry) {
		if (entry.second.stored.expires > now) return false;
		dropped.push_back(entry.first);
		return true;
	});
	if (kept_.size() <= room) return;
	for (auto oldest : least_recently_used_without_queued_mail(kept_.size() - room, has_queued_mail)) {
		log::info("queue: MTA-STS policy dropped, least recently used of too many",
		          {{"domain", oldest->first}, {"kept", std::to_string(max_domains_)}});
		dropped.push_back(oldest->first);
		kept_.erase(oldest);
	}
}

std::vector<StsCache::KeptIterator>
StsCache::least_recently_used_without_queued_mail(size_t count, const HasQueuedMail& has_queued_mail) {
	// D44: RFC 8461 10.2's downgrade needs the policy to be missing when
	// its domain is mailed next. A domain with queued mail will be, at its
	// next attempt, however long that waits: its policy is not given up
	// for room. Of the others, the domain mailed longest ago is the least
	// likely to be.
	std::vector<KeptIterator> candidates;
	for (auto it = kept_.begin(); it != kept_.end(); ++it)
		if (!has_queued_mail(it->first)) candidates.push_back(it);
	count = std::min(count, candidates.size());
	std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(count), candidates.end(),
	                  [](KeptIterator a, KeptIterator b) {
				  return std::tie(a->second.used, a->first) < std::tie(b->second.used, b->first);
			  });
	candidates.resize(count);
	return candidates;
}

void StsCache::log_if_beyond_bound() const {
	if (kept_.size() <= max_domains_) return;
	log::info("queue: MTA-STS policies kept beyond the bound for domains with queued mail",
	          {{"kept", std::to_string(kept_.size())}, {"bound", std::to_string(max_domains_)}});
}

}  // namespace tern::queue
