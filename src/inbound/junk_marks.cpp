#include "inbound/junk_marks.h"

#include <cctype>

#include "util/mailbox_name.h"
#include "util/strings.h"

namespace tern::inbound {

std::map<int, std::string> parse_dovecot_keywords(std::string_view text) {
	std::map<int, std::string> out;
	while (!text.empty()) {
		size_t eol = text.find('\n');
		std::string_view line = text.substr(0, eol);
		text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
		if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
		size_t sp = line.find(' ');
		if (sp == 0 || sp == std::string_view::npos || sp > 2) continue;
		int n = 0;
		bool digits = true;
		for (char c : line.substr(0, sp)) {
			if (!is_ascii_digit(c)) digits = false;
			n = n * 10 + (c - '0');
		}
		std::string_view name = line.substr(sp + 1);
		if (!digits || n >= 26 || name.empty()) continue;
		out[n] = std::string(name);
	}
	return out;
}

std::string_view maildir_unique_name(std::string_view file_name) { return file_name.substr(0, file_name.find(':')); }

std::string_view maildir_flags(std::string_view file_name) {
	size_t p = file_name.find(":2,");
	return p == std::string_view::npos ? std::string_view() : file_name.substr(p + 3);
}

JunkMark junk_mark_from_keywords(std::string_view flags, const std::map<int, std::string>& keywords) {
	bool junk = false, notjunk = false;
	for (char c : flags) {
		if (c < 'a' || c > 'z') continue;  // upper case letters are the standard flags
		auto it = keywords.find(c - 'a');
		if (it == keywords.end()) continue;
		std::string k = ascii_lower(it->second);
		if (k == "$junk" || k == "junk") junk = true;
		if (k == "$notjunk" || k == "notjunk" || k == "nonjunk") notjunk = true;
	}
	if (junk == notjunk) return JunkMark::unknown;
	return junk ? JunkMark::junk : JunkMark::notjunk;
}

std::string folder_name_from_dir(std::string_view dir_name) {
	if (dir_name.empty() || dir_name == ".") return "INBOX";
	if (dir_name.front() == '.') dir_name.remove_prefix(1);
	// Written in modified UTF-7 (store::mailbox_dir, Dovecot); a name that
	// is not is taken as it stands.
	return mailbox_from_utf7(dir_name).value_or(std::string(dir_name));
}

FolderClassifier::FolderClassifier(const FolderRules& rules)
	: junk_(rules.junk, std::regex::ECMAScript | std::regex::icase),
	  neutral_(rules.neutral, std::regex::ECMAScript | std::regex::icase) {}

FolderKind FolderClassifier::classify(std::string_view folder) const {
	std::string name(folder);
	if (std::regex_search(name, junk_)) return FolderKind::junk;
	if (std::regex_search(name, neutral_)) return FolderKind::neutral;
	return FolderKind::notjunk;
}

JunkMark next_junk_mark(JunkMark previous, std::optional<FolderKind> previous_folder, FolderKind folder,
                        JunkMark from_keywords) {
	if (from_keywords != JunkMark::unknown) return from_keywords;
	switch (folder) {
	case FolderKind::junk: return JunkMark::junk;
	case FolderKind::notjunk: return JunkMark::notjunk;
	case FolderKind::neutral:
		if (previous_folder == FolderKind::junk) return JunkMark::notjunk;  // rescued from Junk
		return previous;
	}
	return previous;
}

}  // namespace tern::inbound
