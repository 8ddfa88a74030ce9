// A generated corpus for the junk filter's tests: messages of common words
// with a share of words typical of ham or of junk.
#pragma once
#include <random>
#include <string>
#include <vector>

namespace tern::testing {

inline std::string generate_corpus_message(std::mt19937& rng, bool junk, int n) {
	static const std::vector<std::string> common = {"hello",  "the",  "your", "today", "please",
	                                                "thanks", "with", "from", "this",  "about",
	                                                "will",   "have", "time", "more",  "information"};
	static const std::vector<std::string> hammy = {"meeting",   "agenda",   "project", "review",  "lunch",
	                                               "colleague", "deadline", "report",  "draft",   "minutes",
	                                               "schedule",  "budget",   "team",    "tomorrow"};
	static const std::vector<std::string> spammy = {"cheap",  "pills",   "winner",      "lottery",    "prize",
	                                                "casino", "bonus",   "unsubscribe", "guaranteed", "limited",
	                                                "offer",  "bitcoin", "claim",       "free"};
	const auto& special = junk ? spammy : hammy;
	std::uniform_int_distribution<size_t> pick_common(0, common.size() - 1), pick_special(0, special.size() - 1);
	std::bernoulli_distribution special_word(0.35);
	std::string subject = special[pick_special(rng)] + " " + common[pick_common(rng)];
	std::string body;
	for (int i = 0; i < n; ++i)
		body += (special_word(rng) ? special[pick_special(rng)] : common[pick_common(rng)]) + " ";
	return "Subject: " + subject + "\r\nContent-Type: text/plain\r\n\r\n" + body + "\r\n";
}

}  // namespace tern::testing
