// SMTP replies: codes, enhanced codes, the typed error raised by parsers and
// command handlers, and the wire formatting of a reply (doc/behaviour.md §0).
#pragma once
#include <string>
#include <string_view>
#include <utility>

namespace tern::smtp {

// An error that becomes exactly one reply at the dispatch boundary.
// `secode` holds the last two parts of the enhanced code ("5.2" for 5.5.2 with
// a 5xx code, "" for none); the class digit comes from `code`.
// `with_id` appends " (<received-id>)" as the model's normal error path does.
struct SmtpError {
	int code = 0;
	std::string secode;
	std::string text;
	bool with_id = true;
	// Close the connection after sending this reply.
	bool close = false;

	// The variants of error_reply(): without the received-id, and with the
	// connection closed after the reply.
	SmtpError without_id() && {
		with_id = false;
		return std::move(*this);
	}
	SmtpError then_close() && {
		close = true;
		return std::move(*this);
	}
};

// The one way to build an error reply: code, secondary enhanced code
// (smtp::se), text; the received-id is appended when it is sent.
inline SmtpError error_reply(int code, std::string_view secode, std::string text) {
	return SmtpError{code, std::string(secode), std::move(text)};
}

// Full enhanced code for a reply: "5.5.2" from (501, "5.2"); "" when secode is empty.
std::string enhanced_code(int code, std::string_view secode);

// Formats a reply for the wire, CRLF-terminated lines. Text with '\n' gives a
// multi-line reply, each line with the same code and enhanced code; lines
// longer than 510 characters (including code and enhanced code) are wrapped
// at a space searched backwards in the text from offset 510-minus-prefix
// down to offset 400, else cut at offset 400 (the model's loop); the
// space starts the next piece.
// RFC 5321 4.2.1 (multi-line), 4.5.3.1.5 (reply line length).
std::string format_reply(int code, std::string_view secode, std::string_view text);

// Secondary enhanced codes the model uses (RFC 3463), as "subject.detail".
namespace se {
inline constexpr std::string_view other0 = "0.0";
inline constexpr std::string_view addr_bad_dest_mailbox1 = "1.1";
inline constexpr std::string_view addr_bad_sender_sys_syntax7 = "1.7";
inline constexpr std::string_view addr_other0 = "1.0";
inline constexpr std::string_view mailbox_full2 = "2.2";
inline constexpr std::string_view mailbox_msg_too_large3 = "2.3";
inline constexpr std::string_view sys_other0 = "3.0";
inline constexpr std::string_view sys_storage_full1 = "3.1";
inline constexpr std::string_view sys_not_accepting2 = "3.2";
inline constexpr std::string_view sys_msg_limit_exceeded4 = "3.4";
inline constexpr std::string_view net_bad_connection2 = "4.2";
inline constexpr std::string_view net_routing_loop6 = "4.6";
inline constexpr std::string_view net_other0 = "4.0";
inline constexpr std::string_view proto_other0 = "5.0";
inline constexpr std::string_view proto_bad_cmd_or_seq1 = "5.1";
inline constexpr std::string_view proto_syntax2 = "5.2";
inline constexpr std::string_view proto_too_many_rcpts3 = "5.3";
inline constexpr std::string_view proto_param_invalid4 = "5.4";
inline constexpr std::string_view proto_unrecognized_param3 = "3.3";  // "unrecognized parameter" uses 5.3.3
inline constexpr std::string_view msg_content_other0 = "6.0";
inline constexpr std::string_view msg_8bit_required7 = "6.7";
inline constexpr std::string_view pol_other0 = "7.0";
inline constexpr std::string_view pol_delivery_not_auth1 = "7.1";
inline constexpr std::string_view pol_bad_credentials8 = "7.8";
inline constexpr std::string_view pol_encryption_needed10 = "7.10";
inline constexpr std::string_view pol_tls_required11 = "7.11";
inline constexpr std::string_view pol_dmarc26 = "7.26";
inline constexpr std::string_view pol_null_mx27 = "7.27";
}  // namespace se

}  // namespace tern::smtp
