// Subject-pass tokens (doc/behaviour.md §9, steps 8 and 12): a sender the
// analysis refused may resend with `(pass:TOKEN)` in the Subject to prove a
// person is behind it. The token binds the sender's address and the time to
// a per-account key, so it cannot be made up or reused for another sender.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tern::inbound {

// 22 characters of base64url (no padding) over 16 bytes: 4 bytes of version
// (high nibble, 0) and the time with its low 8 bits dropped, then the first
// 12 bytes of HMAC-SHA256(key, those 4 bytes + sender).
std::string make_subjectpass_token(std::string_view key, std::string_view sender, int64_t unix_time);

// The token inside `(pass:TOKEN)` in a Subject value, when there is one.
std::optional<std::string> subjectpass_token_in(std::string_view subject);

// Whether `token` was made with `key` for `sender` at most `period_s`
// seconds before `now` (and not in the future beyond the time's 256-second
// granularity).
bool subjectpass_token_valid(std::string_view token, std::string_view key, std::string_view sender, int64_t now,
                             int64_t period_s);

}  // namespace tern::inbound
