#include "inbound/reputation.h"

#include <set>
#include <stdexcept>

namespace tern::inbound {

namespace {

constexpr int64_t day_s = 24 * 3600;
constexpr int64_t year_s = 365 * day_s;

// Answers of the steps: leaning (nullopt: no leaning), conclusive, method.
struct Step {
	std::optional<bool> junk;
	bool conclusive = false;
	const char* method = "none";
};

double junk_share(const std::vector<MarkedMessage>& msgs) {
	size_t junk = 0;
	for (const auto& m : msgs) junk += m.junk ? 1 : 0;
	return static_cast<double>(junk) / static_cast<double>(msgs.size());
}

// The newest one, or the newest two, all junk.
bool newest_junk(const std::vector<MarkedMessage>& msgs) { return msgs[0].junk && (msgs.size() == 1 || msgs[1].junk); }

class Steps {
public:
	Steps(const MessageIdentity& m, History& h, int64_t now) : m_(m), h_(h), now_(now) {}

	std::vector<MarkedMessage> query(HistoryKey key, const std::string& value, int64_t max_age, size_t limit,
	                                 std::optional<bool> from_validated = std::nullopt) {
		return h_.marked_messages(HistoryQuery{key, value, from_validated, now_ - max_age, limit});
	}

	// Step 1: the exact From address. Without validation the answer only
	// leans; an unvalidated From that validated before is likely forged.
	std::optional<Step> from_address() {
		std::string address = m_.from_localpart + "@" + m_.from_domain;
		auto msgs = query(HistoryKey::from_address, address, 3 * year_s, 2, m_.from_validated);
		if (!msgs.empty()) return Step{newest_junk(msgs), m_.from_validated, "msgfromfull"};
		if (!m_.from_validated) {
			msgs = query(HistoryKey::from_address, address, 3 * year_s, 2, true);
			if (!msgs.empty()) return Step{true, newest_junk(msgs), "msgfromfull"};
		}
		// Step 2: the user wrote to this address.
		if (h_.sent_to_address(m_.from_localpart, m_.from_domain, now_ - 3 * year_s))
			return Step{false, true, "msgtofull"};
		return std::nullopt;
	}

	// Step 3: the From domain, then its organizational domain.
	std::optional<Step> from_domain(bool org) {
		HistoryKey key = org ? HistoryKey::from_org_domain : HistoryKey::from_domain;
		const std::string& value = org ? m_.from_org_domain : m_.from_domain;
		const char* method = org ? "msgfromorgdomain" : "msgfromdomain";
		auto msgs = query(key, value, 2 * year_s, 20, m_.from_validated);
		if (!msgs.empty()) {
			// More than 80 % not junk, counted in whole percent.
			size_t nonjunk = 0;
			for (const auto& msg : msgs) nonjunk += msg.junk ? 0 : 1;
			if (100 * nonjunk / msgs.size() > 80) return Step{false, true, method};
			if (nonjunk == 0) {
				// Only conclusive with junk from at least 3 different localparts.
				std::set<std::string> localparts;
				for (const auto& msg : msgs) localparts.insert(msg.from_localpart);
				return Step{true, localparts.size() >= 3, method};
			}
			return Step{std::nullopt, false, method};  // mixed: do not block a new sender
		}
		if (!m_.from_validated) {
			msgs = query(key, value, 2 * year_s, 2, true);
			if (!msgs.empty()) return Step{true, newest_junk(msgs), method};
		}
		bool sent = org ? h_.sent_to_org_domain(value, now_ - 2 * year_s)
				: h_.sent_to_domain(value, now_ - 2 * year_s);
		if (sent) return Step{false, true, org ? "msgtoorgdomain" : "msgtodomain"};
		return std::nullopt;
	}

	// Step 4: passing DKIM domains and the validated SPF or EHLO identity.
	std::optional<Step> dkim_spf() {
		std::vector<double> signals;
		size_t most = 0;
		for (const auto& d : m_.dkim_domains) {
			auto msgs = query(HistoryKey::dkim_domain, d, year_s / 2, 50);
			if (msgs.empty()) continue;
			signals.push_back(junk_share(msgs));
			most = msgs.size();  // as the model: the last domain's count
		}
		if (m_.mailfrom_validated || m_.ehlo_validated) {
			std::vector<MarkedMessage> msgs;
			if (m_.mailfrom_validated && !m_.mailfrom_domain.empty()) {
				msgs = query(HistoryKey::mailfrom_address,
				             m_.mailfrom_localpart + "@" + m_.mailfrom_domain, year_s / 2, 50);
				if (msgs.empty())
					msgs = query(HistoryKey::mailfrom_domain, m_.mailfrom_domain, year_s / 2, 50);
			}
			if (msgs.empty() && m_.ehlo_validated && !m_.ehlo_domain.empty())
				msgs = query(HistoryKey::ehlo_domain, m_.ehlo_domain, year_s / 2, 50);
			if (!msgs.empty()) {
				signals.push_back(junk_share(msgs));
				most = std::max(most, msgs.size());
			}
		}
		if (signals.empty()) return std::nullopt;
		size_t ham = 0, spam = 0;
		for (double p : signals) {
			if (p < 0.1)
				++ham;
			else if (p > 0.9)
				++spam;
		}
		if (ham > 0 && spam == 0) return Step{false, true, "dkimspf"};
		if (spam > 0 && ham == 0) return Step{true, most > 1, "dkimspf"};
		return Step{std::nullopt, false, "dkimspf"};
	}

	// Step 5: the client's address, then wider networks, which need more
	// messages before they decide.
	std::optional<Step> ip() {
		struct Width {
			HistoryKey key;
			const std::string* value;
			size_t need;
			const char* method;
		};
		const Width widths[] = {{HistoryKey::ip1, &m_.ip1, 2, "ip1"},
		                        {HistoryKey::ip2, &m_.ip2, 5, "ip2"},
		                        {HistoryKey::ip3, &m_.ip3, 10, "ip3"}};
		for (const auto& w : widths) {
			if (w.value->empty()) continue;
			auto msgs = query(w.key, *w.value, year_s / 4, 50);
			if (msgs.empty()) continue;
			double p = junk_share(msgs);
			std::optional<bool> junk;
			if (p < 0.25)
				junk = false;
			else if (p > 0.75)
				junk = true;
			return Step{junk, msgs.size() >= w.need && (p <= 0.1 || p >= 0.9), w.method};
		}
		return std::nullopt;
	}

private:
	const MessageIdentity& m_;
	History& h_;
	int64_t now_;
};

ReputationAnswer answer(const Step& s) {
	return ReputationAnswer{false, s.conclusive, s.junk.value_or(false), s.method};
}

}  // namespace

ReputationAnswer reputation(const MessageIdentity& message, History& history, int64_t now) {
	try {
		Steps steps(message, history, now);
		if (!message.from_domain.empty()) {
			if (auto s = steps.from_address()) return answer(*s);
			if (auto s = steps.from_domain(false)) return answer(*s);
			if (auto s = steps.from_domain(true)) return answer(*s);
		}
		if (auto s = steps.dkim_spf()) return answer(*s);
		if (auto s = steps.ip()) return answer(*s);
		return ReputationAnswer{};
	} catch (const std::runtime_error&) {
		ReputationAnswer a;
		a.error = true;
		return a;
	}
}

}  // namespace tern::inbound
