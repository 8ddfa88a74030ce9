// Table "mtasts.db": domain → the policy, as lines: the id, the mode, the
// max_age, the expiry (unix seconds), then one mx pattern per line.
#include "store/mta_sts_policies.h"

#include <charconv>

#include "store/table.h"
#include "util/strings.h"

namespace tern::store {

namespace {

constexpr const char* table_file = "mtasts.db";

std::optional<int64_t> parse_int(std::string_view text) {
	int64_t n = 0;
	auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
	if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
	return n;
}

}  // namespace

std::string sts_policy_encode(const StoredStsPolicy& stored) {
	std::string text = stored.id + "\n" + mailauth::mta_sts::mode_name(stored.policy.mode) + "\n" +
	    std::to_string(stored.policy.max_age) + "\n" + std::to_string(stored.expires);
	for (const std::string& mx : stored.policy.mx) text += "\n" + mx;
	return text;
}

bool sts_policy_decode(std::string_view domain, std::string_view text, StoredStsPolicy& out) {
	std::vector<std::string_view> lines = split(text, '\n');
	if (lines.size() < 4 || lines[0].empty()) return false;
	// D43: a policy kept before the limit came is dropped, not kept for
	// the rest of its max_age.
	if (lines.size() - 4 > mailauth::mta_sts::max_mx_patterns) return false;
	auto mode = mailauth::mta_sts::mode_from_name(lines[1]);
	auto max_age = parse_int(lines[2]);
	auto expires = parse_int(lines[3]);
	if (!mode || !max_age || !expires) return false;
	out = StoredStsPolicy{};
	out.domain = std::string(domain);
	out.id = std::string(lines[0]);
	out.policy.mode = *mode;
	out.policy.max_age = *max_age;
	out.expires = *expires;
	for (size_t i = 4; i < lines.size(); i++) out.policy.mx.emplace_back(lines[i]);
	return true;
}

void sts_policies_write(Env& env, const std::vector<StoredStsPolicy>& saved, const std::vector<std::string>& dropped) {
	env.in_table(table_file, [&](TableTxn& t) {
		for (const std::string& domain : dropped) t.del(domain);
		for (const StoredStsPolicy& stored : saved) t.put(stored.domain, sts_policy_encode(stored));
	});
}

std::vector<StoredStsPolicy> sts_policies_load(Env& env, int64_t now) {
	std::vector<StoredStsPolicy> kept;
	env.in_table(table_file, [&](TableTxn& t) {
		kept.clear();  // a deadlock victim runs this again
		std::vector<std::string> gone;
		t.scan("", "", [&](std::string_view key, std::string_view value) {
			StoredStsPolicy stored;
			if (sts_policy_decode(key, value, stored) && stored.expires > now)
				kept.push_back(std::move(stored));
			else
				gone.emplace_back(key);
			return true;
		});
		for (const std::string& key : gone) t.del(key);
	});
	return kept;
}

}  // namespace tern::store
