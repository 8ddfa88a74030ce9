// Table "junk.db". Key layouts (account names hold no 0x00, see db.cpp):
//   't' account 0x00          → "<ham> <spam>"  messages trained
//   'w' account 0x00 word     → "<ham> <spam>"  messages with the word
#include "store/junk_counts.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "store/files.h"
#include "store/table.h"
#include "util/random.h"

namespace tern::store {

namespace {

constexpr const char* table_file = "junk.db";

std::string totals_key(const std::string& account) {
	std::string k = "t" + account;
	k.push_back('\0');
	return k;
}

std::string word_key(const std::string& account, const std::string& word) {
	std::string k = "w" + account;
	k.push_back('\0');
	return k + word;
}

inbound::WordCount parse_count(std::string_view v) {
	inbound::WordCount c;
	long long ham = 0, spam = 0;
	if (std::sscanf(std::string(v).c_str(), "%lld %lld", &ham, &spam) == 2) {
		c.ham = ham;
		c.spam = spam;
	}
	return c;
}

std::string format_count(const inbound::WordCount& c) { return std::to_string(c.ham) + " " + std::to_string(c.spam); }

// Adds `delta` (+1 or -1) to the mark's side of the record at `key`; a
// record that reaches zero on both sides is removed.
void adjust(TableTxn& t, const std::string& key, JunkMark mark, int delta) {
	auto old = t.get(key, true);
	inbound::WordCount c = old ? parse_count(*old) : inbound::WordCount{};
	int64_t& side = mark == JunkMark::junk ? c.spam : c.ham;
	side = std::max<int64_t>(0, side + delta);
	if (c.ham == 0 && c.spam == 0) {
		if (old) t.del(key);
		return;
	}
	t.put(key, format_count(c));
}

void train_in(TableTxn& t, const std::string& account, const std::set<std::string>& words, JunkMark mark, int delta) {
	adjust(t, totals_key(account), mark, delta);
	for (const auto& w : words) adjust(t, word_key(account, w), mark, delta);
}

void check_account(const std::string& account) {
	if (account.empty() || account.find('\0') != std::string::npos)
		throw DbError("invalid account name for the junk filter");
}

}  // namespace

JunkCountsTable::JunkCountsTable(Env& env, std::string account) : env_(env), account_(std::move(account)) {
	check_account(account_);
}

inbound::WordCount JunkCountsTable::totals() {
	inbound::WordCount c;
	env_.in_table(table_file, [&](TableTxn& t) {
		auto v = t.get(totals_key(account_));
		c = v ? parse_count(*v) : inbound::WordCount{};
	});
	return c;
}

std::map<std::string, inbound::WordCount> JunkCountsTable::words(const std::set<std::string>& words) {
	std::map<std::string, inbound::WordCount> out;
	env_.in_table(table_file, [&](TableTxn& t) {
		out.clear();
		for (const auto& w : words)
			if (auto v = t.get(word_key(account_, w))) out.emplace(w, parse_count(*v));
	});
	return out;
}

void JunkCountsTable::train(const std::set<std::string>& words, JunkMark mark, Training training) {
	env_.in_table(table_file,
	              [&](TableTxn& t) { train_in(t, account_, words, mark, training == Training::add ? 1 : -1); });
}

void JunkCountsTable::retrain(const std::set<std::string>& words, JunkMark from, JunkMark to) {
	if (from == to) return;
	env_.in_table(table_file, [&](TableTxn& t) {
		train_in(t, account_, words, from, -1);
		train_in(t, account_, words, to, 1);
	});
}

std::set<std::string> message_file_words(const ReadableFile& message_file) {
	return inbound::message_words(read_file_head(message_file, junk_filter_read_limit));
}

void train_junk_mark_change(Env& env, const std::string& account, const std::string& message_file,
                            std::optional<JunkMark> from, std::optional<JunkMark> to) {
	if (from == to) return;
	std::set<std::string> words = message_file_words(message_file);
	check_account(account);
	env.in_table(table_file, [&](TableTxn& t) {
		if (from) train_in(t, account, words, *from, -1);
		if (to) train_in(t, account, words, *to, 1);
	});
}

JunkVerdictCounters& junk_verdict_counters() {
	static JunkVerdictCounters counters;
	return counters;
}

std::optional<inbound::JunkFilterAnswer> junk_probability(Env* env, const config::Account& account,
                                                          const ReadableFile& message_file) {
	if (!account.junk_filter) return std::nullopt;
	inbound::JunkFilterAnswer answer;
	answer.threshold = account.junk_filter->threshold;
	// doc/behaviour.md §9 step 9: the threshold moves by up to ±0.05 per
	// message, so a sender cannot tune a message to sit just below it.
	FastRandom rng;
	answer.jitter = std::uniform_real_distribution<double>(-0.05, 0.05)(rng);
	auto& counters = junk_verdict_counters();
	if (!env) {
		answer.open_error = true;
		++counters.error;
		return answer;
	}
	std::set<std::string> words;
	try {
		words = message_file_words(message_file);
	} catch (const std::exception&) {
		answer.classify_error = true;
		++counters.error;
		return answer;
	}
	try {
		JunkCountsTable counts(*env, account.name);
		auto c = inbound::classify_words(words, counts, account.junk_filter->params);
		answer.probability = c.probability;
		if (c.untrained)
			++counters.untrained;
		else if (c.probability > answer.threshold + answer.jitter)
			++counters.junk;
		else
			++counters.ham;
	} catch (const std::exception&) {
		answer.open_error = true;
		++counters.error;
	}
	return answer;
}

}  // namespace tern::store
