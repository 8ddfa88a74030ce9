#include "server/inbound_ctl.h"

#include <cstdio>

#include "inbound/junk_filter.h"
#include "store/junk_counts.h"
#include "store/reports.h"

namespace tern::server {

namespace {

control::Answer usage_error(const std::string& text) { return {2, "", "ternctl: " + text + "\n"}; }

std::string fixed(double v) {
	char buf[32];
	std::snprintf(buf, sizeof buf, "%.4f", v);
	return buf;
}

// Without a junk_filter section the account is checked with the default
// settings, so a corpus can be trained and tried before the filter is on.
config::JunkFilterSettings settings_of(const config::Account& account) {
	return account.junk_filter ? *account.junk_filter : config::JunkFilterSettings{};
}

control::Answer junk_check(store::Env& env, const config::Account& account, const std::set<std::string>& words) {
	config::JunkFilterSettings settings = settings_of(account);
	store::JunkCountsTable counts(env, account.name);
	auto c = inbound::classify_words(words, counts, settings.params);
	std::string out = "probability: " + fixed(c.probability) + "\n";
	bool junk = !c.untrained && c.probability > settings.threshold;
	if (c.untrained)
		out += "verdict: untrained (no junk or no ham trained yet)\n";
	else
		out += std::string("verdict: ") + (junk ? "junk" : "not junk") + " (threshold " +
		    fixed(settings.threshold) + ")\n";
	for (const auto& w : c.spam_words) out += "junk " + fixed(w.spam_probability) + " " + w.word + "\n";
	for (const auto& w : c.ham_words) out += "ham " + fixed(w.spam_probability) + " " + w.word + "\n";
	return {junk ? 1 : 0, out, ""};
}

}  // namespace

std::string junk_words_arg(const std::set<std::string>& words) {
	std::string out;
	for (const auto& w : words) {
		if (!out.empty()) out += '\n';
		out += w;
	}
	return out;
}

std::set<std::string> junk_words_from_arg(std::string_view arg) {
	std::set<std::string> out;
	size_t start = 0;
	while (start <= arg.size()) {
		size_t end = arg.find('\n', start);
		if (end == std::string_view::npos) end = arg.size();
		if (end > start) out.emplace(arg.substr(start, end - start));
		start = end + 1;
	}
	return out;
}

control::Answer run_junk_command(store::Env& env, const config::Config& cfg, const std::vector<std::string>& args) {
	if (args.size() < 2) return usage_error("junk: expected check or train and an account");
	auto it = cfg.accounts.find(args[1]);
	if (it == cfg.accounts.end()) return {1, "", "error: no such account: " + args[1] + "\n"};
	const config::Account& account = it->second;
	if (args[0] == "check" && args.size() == 3) return junk_check(env, account, junk_words_from_arg(args[2]));
	if (args[0] == "train" && args.size() == 5) {
		if (args[2] != "junk" && args[2] != "ham") return usage_error("junk train: expected junk or ham");
		if (args[3] != "add" && args[3] != "remove") return usage_error("junk train: expected add or remove");
		auto words = junk_words_from_arg(args[4]);
		store::JunkMark mark = args[2] == "junk" ? store::JunkMark::junk : store::JunkMark::ham;
		bool add = args[3] == "add";
		store::JunkCountsTable counts(env, account.name);
		counts.train(words, mark, add ? store::Training::add : store::Training::remove);
		inbound::WordCount totals = counts.totals();
		return {0,
		        std::string(add ? "trained " : "untrained ") + account.name + ": " +
		            (mark == store::JunkMark::junk ? "junk" : "ham") + " message, " +
		            std::to_string(words.size()) + " words; now " + std::to_string(totals.spam) + " junk and " +
		            std::to_string(totals.ham) + " ham messages\n",
		        ""};
	}
	return usage_error("junk: unexpected arguments");
}

control::Answer run_reports_command(store::Env& env, bool tls, const std::vector<std::string>& args) {
	if (args.empty() || args[0] != "reports" || args.size() > 2)
		return usage_error(std::string(tls ? "tlsrpt" : "dmarc") + ": expected reports [DOMAIN]");
	auto reports = store::list_reports(env, tls ? store::ReportKind::tls : store::ReportKind::dmarc,
	                                   args.size() == 2 ? args[1] : "");
	if (reports.empty()) return {1, "", "no reports\n"};
	std::string out;
	for (const auto& r : reports) out += store::report_line(r) + "\n";
	return {0, out, ""};
}

}  // namespace tern::server
