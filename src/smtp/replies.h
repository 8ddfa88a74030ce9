// Replies whose wording the SMTP session (server/) and sendmail.tern -bs
// (message/sendmail_smtp) share: one place for each text, so that both
// answer alike (the model's texts, doc/behaviour.md §4). Positive replies
// carry no received-id; refusals do where the session appends one.
#pragma once
#include <cstdint>

#include "smtp/reply.h"

namespace tern::smtp {

// The size limit a listener has unless its config says otherwise; the
// line between the two enhanced codes of message_too_large below.
inline constexpr int64_t default_max_message_size = 100 * 1024 * 1024;  // 100 MiB

// A command line longer than this is not SMTP any more (doc/behaviour.md
// §1: RFC 5321 4.5.3.1.4 allows 512; extensions make lines longer).
inline constexpr size_t max_command_line = 2048;

}  // namespace tern::smtp

namespace tern::smtp::replies {

inline SmtpError positive(int code, std::string_view secode, std::string text) {
	return SmtpError{code, std::string(secode), std::move(text), false};
}

inline SmtpError mail_accepted() { return positive(250, se::addr_other0, "looking good"); }
inline SmtpError recipient_accepted() { return positive(250, se::addr_other0, "now on the list"); }
inline SmtpError send_data() { return positive(354, "", "see you at the bare dot"); }
inline SmtpError reset_done() { return positive(250, se::other0, "all clear"); }
inline SmtpError noop_done() { return positive(250, se::other0, "alrighty"); }
inline SmtpError help() { return positive(214, se::other0, "see rfc 5321 (smtp)"); }
inline SmtpError goodbye() { return positive(221, se::other0, "okay thanks bye"); }

// RFC 5321 3.5.3: 252 when we will not say whether the address exists.
inline SmtpError will_not_verify(bool expn) {
	return error_reply(252, se::pol_other0,
	                   expn ? "no expand but will try delivery" : "no verify but will try delivery");
}

inline SmtpError missing_mail() { return error_reply(503, se::proto_bad_cmd_or_seq1, "missing MAIL FROM"); }
inline SmtpError missing_recipient() { return error_reply(503, se::proto_bad_cmd_or_seq1, "missing RCPT TO"); }
inline SmtpError already_have_mail() { return error_reply(503, se::proto_bad_cmd_or_seq1, "already have MAIL"); }
// RFC 1870 6.1 and 6.3, RFC 3463 (doc/behaviour.md D12): a message larger
// than the limit. `judged` is the size that decided it, the size MAIL FROM
// declared or the limit the data went over: from the default limit up the
// system's limit was reached (5.3.4), below it the mailbox's (5.2.3).
inline SmtpError message_too_large(int64_t judged) {
	return error_reply(552,
	                   judged < default_max_message_size ? se::mailbox_msg_too_large3 : se::sys_msg_limit_exceeded4,
	                   "message too large");
}

// A command line over max_command_line: what follows cannot be trusted to
// be SMTP, so the session ends after it.
inline SmtpError line_too_long() {
	return error_reply(500, se::proto_other0, "line too long, smtp max is 512, we reached 2048")
	    .without_id()
	    .then_close();
}

// Message data that could not be stored: a full disk (ENOSPC, EDQUOT, or
// free space below the reserve) is "mail system full", 452 4.3.1 (RFC 3463
// 3.4, RFC 5321 4.2.2), anything else the generic 451 4.3.0; the text is
// the same either way. The SMTP session and local submission (sendmail.tern)
// both answer with it.
inline SmtpError storage_failure(bool disk_full, std::string text) {
	if (disk_full) return error_reply(452, se::sys_storage_full1, std::move(text));
	return error_reply(451, se::sys_other0, std::move(text));
}

// Below the disk reserve (core/disk_space.h) no new message data is taken.
inline SmtpError below_disk_reserve() { return storage_failure(true, "insufficient storage"); }

inline SmtpError unknown_command() { return error_reply(500, se::proto_bad_cmd_or_seq1, "unknown command"); }

}  // namespace tern::smtp::replies
