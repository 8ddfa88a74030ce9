// The per-account Bayesian junk filter (doc/behaviour.md §9, step 9): the
// words and word pairs of a message's subject and text parts, weighed by how
// often each appeared in mail the user marked junk and not junk. Pure: the
// counts come from a JunkCounts (the database, or a test's map).
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace tern::inbound {

// The words of a message: its Subject (RFC 2047 decoded) and its text/plain
// and text/html parts (transfer encoding undone, charset to UTF-8, HTML tags
// dropped), lower-cased, split at anything that is not a letter or digit
// (bytes of UTF-8 sequences count as letters), 3 to 40 bytes long, and each
// pair of adjacent words as "one two". At most the first 16 KiB of the
// Subject field and 256 KiB of text in all are read.
std::set<std::string> message_words(std::string_view message);

struct WordCount {
	int64_t ham = 0, spam = 0;
};

class JunkCounts {
public:
	virtual ~JunkCounts() = default;
	// Number of trained messages of each kind.
	virtual WordCount totals() = 0;
	// Counts of the given words (absent words are left out).
	virtual std::map<std::string, WordCount> words(const std::set<std::string>& words) = 0;
};

struct JunkFilterParams {
	size_t top_words = 10;     // the strongest words of each side that decide
	double ignore_band = 0.1;  // words within 0.5 ± this say nothing
	int64_t rare_words = 2;    // words seen at most this often are ignored
	double max_power = 0.01;   // no word is more certain than 1 - this
};

struct TellingWord {
	std::string word;
	double spam_probability = 0.5;
};

struct JunkClassification {
	double probability = 0.5;                        // that the message is junk
	std::vector<TellingWord> ham_words, spam_words;  // the words that decided, strongest first
	bool untrained = false;                          // no junk or no ham trained yet: says nothing
};

JunkClassification classify_words(const std::set<std::string>& words, JunkCounts& counts,
                                  const JunkFilterParams& params = {});

// A map-backed JunkCounts, for training in memory (ternctl, tests).
class MemoryJunkCounts : public JunkCounts {
public:
	void train(const std::set<std::string>& words, bool junk);
	WordCount totals() override { return totals_; }
	std::map<std::string, WordCount> words(const std::set<std::string>& words) override;

private:
	WordCount totals_;
	std::map<std::string, WordCount> counts_;
};

}  // namespace tern::inbound
