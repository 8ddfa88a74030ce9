// The junk filter's word counts per account in the Berkeley DB environment
// (doc/behaviour.md §9, step 9), trained incrementally: each message marked
// junk or not junk adds its words once; a mark that flips (the user moved a
// message out of the Junk folder) takes them out of one side and adds them
// to the other. Blocking: worker threads or ternctl.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "config/config.h"
#include "inbound/analyze.h"
#include "inbound/junk_filter.h"
#include "store/db.h"
#include "store/files.h"

namespace tern::store {

enum class JunkMark { ham, junk };
enum class Training { add, remove };

// One account's counts, read and trained through `env`.
class JunkCountsTable : public inbound::JunkCounts {
public:
	JunkCountsTable(Env& env, std::string account);

	inbound::WordCount totals() override;
	std::map<std::string, inbound::WordCount> words(const std::set<std::string>& words) override;

	// One message's words, in one transaction. Removing never takes a count
	// below zero (a message untrained twice changes nothing the second time).
	void train(const std::set<std::string>& words, JunkMark mark, Training training);
	// A mark that changed from `from` to `to`: untrain, then train, in one
	// transaction.
	void retrain(const std::set<std::string>& words, JunkMark from, JunkMark to);

private:
	Env& env_;
	std::string account_;
};

// The scanner's one call when a stored message's junk state changed
// (doc/behaviour.md §9 "Learning from the mailbox"): `from` and `to` are
// the old and new marks, nullopt for unknown (no keyword, a neutral
// folder). Takes the message's words out of the old side and adds them to
// the new one, in one transaction; nothing when the two are equal. An
// expunged message keeps its training: its file is gone, and deleting mail
// says nothing about junk. Throws on a read or database error (the scanner
// retries on its next pass).
void train_junk_mark_change(Env& env, const std::string& account, const std::string& message_file,
                            std::optional<JunkMark> from, std::optional<JunkMark> to);

// The junk filter reads at most this much of a message: enough to judge
// any mail, and a 100 MiB attachment costs no memory.
constexpr size_t junk_filter_read_limit = 8 * 1024 * 1024;

// The words of the message in `message_file` (its first
// junk_filter_read_limit bytes, CRLF line ends). Throws on a read error.
std::set<std::string> message_file_words(const ReadableFile& message_file);

// The junk filter's input to the port-25 verdict (inbound::analyze) for a
// message to `account`: nullopt when the account has no junk filter; else
// the probability, the configured threshold and a jitter uniform in
// [-0.05, 0.05), with open_error when the counts cannot be read and
// classify_error when the message cannot. Counts the verdict for
// tern_junkfilter_verdicts_total. Blocking: call it on a worker.
std::optional<inbound::JunkFilterAnswer> junk_probability(Env* env, const config::Account& account,
                                                          const ReadableFile& message_file);

// Junk filter verdicts so far, by outcome, for the metrics sampler
// (kept here because workers count them; read on the loop).
struct JunkVerdictCounters {
	std::atomic<uint64_t> ham{0}, junk{0}, untrained{0}, error{0};
};
JunkVerdictCounters& junk_verdict_counters();

}  // namespace tern::store
