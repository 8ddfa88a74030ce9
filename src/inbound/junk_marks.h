// Junk marks learned from a user's Maildir, the way Dovecot records them
// (doc/behaviour.md "Learning from the mailbox"): IMAP keywords live as
// lower-case letters among a file name's `:2,` flags, mapped to names by the
// folder's `dovecot-keywords` file; the folder a message sits in says the
// rest, through per-account folder rules.
#pragma once
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>

namespace tern::inbound {

enum class JunkMark { unknown, junk, notjunk };

// `dovecot-keywords`: lines "N name"; keyword N is the flag letter 'a' + N
// (26 at most). Malformed lines are skipped.
std::map<int, std::string> parse_dovecot_keywords(std::string_view text);

// The unique part of a Maildir file name (before ':'), stable across flag
// changes and moves between folders.
std::string_view maildir_unique_name(std::string_view file_name);

// The flag letters after ":2," (empty when the name has none).
std::string_view maildir_flags(std::string_view file_name);

// What the keywords among the flags say: $Junk/Junk → junk;
// $NotJunk/NotJunk/NonJunk → not junk (keyword names compare
// case-insensitively, as IMAP keywords do); both or neither → unknown.
JunkMark junk_mark_from_keywords(std::string_view flags, const std::map<int, std::string>& keywords);

// The IMAP name of a Maildir++ folder directory: "" (the root) is INBOX,
// ".Junk" is Junk, ".Lists.tern" is Lists.tern, ".&AMk-t&AOk-" is Été.
std::string folder_name_from_dir(std::string_view dir_name);

// Per-account folder rules, regular expressions matched case-insensitively
// against the folder's IMAP name: junk folders (e.g. `^(junk|spam)`), and
// neutral folders (e.g. `^(inbox|rejects)`) where a message says nothing;
// every other folder (Archive, a project folder) counts as not junk. The
// report folders are neutral by default: a DMARC or TLS report ternd kept
// there, Seen, was filed by the server, not judged by the user.
struct FolderRules {
	std::string junk = "^(junk|spam)";
	std::string neutral = "^(inbox|rejects|trash|drafts|sent|dmarc|tlsrpt)";
};

enum class FolderKind { junk, neutral, notjunk };

class FolderClassifier {
public:
	// Throws std::regex_error for an invalid expression (the config loader
	// checks them first).
	explicit FolderClassifier(const FolderRules& rules);
	FolderKind classify(std::string_view folder) const;

private:
	std::regex junk_, neutral_;
};

// The mark of one message after a scan: the user's keywords win; otherwise
// its folder decides, and a message the user moved out of a junk folder into
// a neutral one counts as not junk; in a neutral folder a message otherwise
// keeps the mark it had.
JunkMark next_junk_mark(JunkMark previous, std::optional<FolderKind> previous_folder, FolderKind folder,
                        JunkMark from_keywords);

}  // namespace tern::inbound
