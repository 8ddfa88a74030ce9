#include "inbound/junk_filter.h"

#include <algorithm>
#include <cmath>

#include "message/header_parse.h"
#include "message/mime.h"

namespace tern::inbound {

namespace {

constexpr size_t min_word = 3, max_word = 40;
// Enough text to judge a message; a huge message adds nothing but cost.
constexpr size_t max_subject = 16 * 1024;  // bytes of the raw field read
constexpr size_t max_text = 256 * 1024;

bool word_byte(unsigned char c) {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

std::string strip_html(std::string_view html) {
	std::string out;
	bool in_tag = false;
	for (char c : html) {
		if (c == '<')
			in_tag = true;
		else if (c == '>') {
			in_tag = false;
			out += ' ';
		} else if (!in_tag)
			out += c;
	}
	return out;
}

void add_words(std::string_view text, std::set<std::string>& out) {
	std::string previous;
	size_t i = 0;
	while (i < text.size()) {
		while (i < text.size() && !word_byte(static_cast<unsigned char>(text[i]))) ++i;
		size_t start = i;
		while (i < text.size() && word_byte(static_cast<unsigned char>(text[i]))) ++i;
		if (i == start) break;
		size_t len = i - start;
		if (len < min_word || len > max_word) {
			previous.clear();
			continue;
		}
		std::string w(text.substr(start, len));
		for (char& c : w)
			if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
		if (!previous.empty()) out.insert(previous + " " + w);
		out.insert(w);
		previous = std::move(w);
	}
}

}  // namespace

std::set<std::string> message_words(std::string_view message) {
	std::set<std::string> out;
	size_t budget = max_text;
	if (auto h = message::parse_header_section(message)) {
		auto subject = message::find_fields(*h, "Subject");
		if (!subject.empty()) {
			// The Subject counts against the same budget as the text parts:
			// a header section may be megabytes of one field.
			std::string value = subject.front()->unfolded_value();
			if (value.size() > max_subject) value.resize(max_subject);
			std::string text = message::decode_encoded_words(value);
			if (text.size() > budget) text.resize(budget);
			budget -= text.size();
			add_words(text, out);
		}
	}
	message::walk_mime(message, [&](const message::MimePart& p) {
		if (p.content_type.type != "text" || budget == 0) return;
		if (p.content_type.subtype != "plain" && p.content_type.subtype != "html") return;
		std::string text = message::to_utf8(p.body, p.content_type.param("charset"));
		if (p.content_type.subtype == "html") text = strip_html(text);
		if (text.size() > budget) text.resize(budget);
		budget -= text.size();
		add_words(text, out);
	});
	return out;
}

JunkClassification classify_words(const std::set<std::string>& words, JunkCounts& counts,
                                  const JunkFilterParams& params) {
	JunkClassification result;
	WordCount totals = counts.totals();
	if (totals.ham == 0 || totals.spam == 0) {
		result.untrained = true;
		return result;
	}
	std::vector<TellingWord> ham, spam;
	for (const auto& [word, c] : counts.words(words)) {
		if (c.ham + c.spam <= params.rare_words) continue;
		// Frequencies relative to each side's size, so a lopsided training set
		// does not tilt every word.
		double fham = static_cast<double>(c.ham) / static_cast<double>(totals.ham);
		double fspam = static_cast<double>(c.spam) / static_cast<double>(totals.spam);
		double p = fspam / (fham + fspam);
		if (std::fabs(p - 0.5) <= params.ignore_band) continue;
		p = std::clamp(p, params.max_power, 1.0 - params.max_power);
		(p < 0.5 ? ham : spam).push_back({word, p});
	}
	std::sort(ham.begin(), ham.end(), [](const auto& a, const auto& b) {
		return a.spam_probability < b.spam_probability ||
		    (a.spam_probability == b.spam_probability && a.word < b.word);
	});
	std::sort(spam.begin(), spam.end(), [](const auto& a, const auto& b) {
		return a.spam_probability > b.spam_probability ||
		    (a.spam_probability == b.spam_probability && a.word < b.word);
	});
	if (ham.size() > params.top_words) ham.resize(params.top_words);
	if (spam.size() > params.top_words) spam.resize(params.top_words);
	// Naive Bayes over the telling words, in log space so that many strong
	// words do not underflow: P = 1 / (1 + e^η), η = Σ ln(1-p) - ln(p).
	double eta = 0;
	for (const auto* side : {&ham, &spam})
		for (const auto& w : *side) eta += std::log(1.0 - w.spam_probability) - std::log(w.spam_probability);
	result.probability = 1.0 / (1.0 + std::exp(eta));
	result.ham_words = std::move(ham);
	result.spam_words = std::move(spam);
	return result;
}

void MemoryJunkCounts::train(const std::set<std::string>& words, bool junk) {
	(junk ? totals_.spam : totals_.ham) += 1;
	for (const auto& w : words) (junk ? counts_[w].spam : counts_[w].ham) += 1;
}

std::map<std::string, WordCount> MemoryJunkCounts::words(const std::set<std::string>& words) {
	std::map<std::string, WordCount> out;
	for (const auto& w : words) {
		auto it = counts_.find(w);
		if (it != counts_.end()) out.emplace(w, it->second);
	}
	return out;
}

}  // namespace tern::inbound
