// IMAP mailbox names as a Maildir++ folder stores them: which names a
// folder can have, and the modified UTF-7 of RFC 3501 5.1.3 that Dovecot
// writes non-ASCII names in on disk (doc/behaviour.md "Maildir").
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace tern {

// A name one folder can carry: not empty, no '/' (the configuration's
// hierarchy has none), no control characters, and not "." or ".." (their
// directories would be the Maildir itself or its parent).
bool valid_mailbox_name(std::string_view name);

// RFC 3501 5.1.3: printable ASCII stands for itself, "&" is "&-", every run
// of other characters is "&" + its UTF-16 in base64 with "," for "/" and
// no padding + "-". Invalid UTF-8 becomes U+FFFD.
std::string mailbox_to_utf7(std::string_view utf8);
// The inverse; nullopt for text that is not modified UTF-7 (a bad shift
// sequence, printable ASCII encoded, an unpaired surrogate).
std::optional<std::string> mailbox_from_utf7(std::string_view utf7);

}  // namespace tern
