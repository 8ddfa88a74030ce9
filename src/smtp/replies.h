// Replies whose wording the SMTP session (server/) and sendmail.tern -bs
// (message/sendmail_smtp) share: one place for each text, so that both
// answer alike (the model's texts, doc/behaviour.md §4). Positive replies
// carry no received-id; refusals do where the session appends one.
#pragma once
#include "smtp/reply.h"

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
inline SmtpError unknown_command() { return error_reply(500, se::proto_bad_cmd_or_seq1, "unknown command"); }

}  // namespace tern::smtp::replies
