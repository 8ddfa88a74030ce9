// The Sendmail/Postfix milter protocol, version 6, from the MTA's side: the
// packet format, option negotiation, and one milter's conversation as a
// state machine fed bytes and returning outcomes. Pure: no sockets, no
// clock; the session layer (server/milter.cpp) moves the bytes and runs the
// timers.
//
// Wire format: every packet is a 4-byte big-endian length, then one command
// byte, then length-1 bytes of data. Strings inside packets end with NUL.
// The MTA sends commands (SMFIC_*), the milter answers with replies
// (SMFIR_*). Option negotiation decides which commands the milter wants
// (SMFIP_NO*), which of them it answers (SMFIP_NR_*: no reply), and which
// changes it may make at the end of a message (SMFIF_*).
//
// Errors are values: a malformed or oversized packet, a reply nobody asked
// for, or a negotiation that asks for more than was offered gives
// Outcome::failed with a reason, and the caller applies the milter's
// default action.
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tern::milter {

// Commands, MTA to milter.
namespace command {
inline constexpr char abort = 'A';
inline constexpr char body = 'B';
inline constexpr char connect = 'C';
inline constexpr char macro = 'D';
inline constexpr char body_eob = 'E';
inline constexpr char helo = 'H';
inline constexpr char header = 'L';
inline constexpr char mail = 'M';
inline constexpr char eoh = 'N';
inline constexpr char optneg = 'O';
inline constexpr char quit = 'Q';
inline constexpr char rcpt = 'R';
inline constexpr char data = 'T';
}  // namespace command

// Replies, milter to MTA.
namespace reply {
inline constexpr char add_rcpt = '+';
inline constexpr char del_rcpt = '-';
inline constexpr char add_rcpt_par = '2';
inline constexpr char accept = 'a';
inline constexpr char replace_body = 'b';
inline constexpr char continue_ = 'c';
inline constexpr char discard = 'd';
inline constexpr char change_from = 'e';
inline constexpr char add_header = 'h';
inline constexpr char insert_header = 'i';
inline constexpr char change_header = 'm';
inline constexpr char progress = 'p';
inline constexpr char quarantine = 'q';
inline constexpr char reject = 'r';
inline constexpr char skip = 's';
inline constexpr char tempfail = 't';
inline constexpr char replycode = 'y';
}  // namespace reply

// Actions a milter may take at the end of a message (SMFIF_*).
namespace action {
inline constexpr uint32_t add_headers = 0x01;  // also insert header
inline constexpr uint32_t change_body = 0x02;
inline constexpr uint32_t add_rcpt = 0x04;
inline constexpr uint32_t del_rcpt = 0x08;
inline constexpr uint32_t change_headers = 0x10;
inline constexpr uint32_t quarantine = 0x20;
inline constexpr uint32_t change_from = 0x40;
inline constexpr uint32_t add_rcpt_par = 0x80;
inline constexpr uint32_t set_symlist = 0x100;  // macro lists in the negotiation reply
}  // namespace action

// Protocol flags (SMFIP_*): commands not sent, commands not answered.
namespace flag {
inline constexpr uint32_t no_connect = 0x01;
inline constexpr uint32_t no_helo = 0x02;
inline constexpr uint32_t no_mail = 0x04;
inline constexpr uint32_t no_rcpt = 0x08;
inline constexpr uint32_t no_body = 0x10;
inline constexpr uint32_t no_headers = 0x20;
inline constexpr uint32_t no_eoh = 0x40;
inline constexpr uint32_t nr_header = 0x80;
inline constexpr uint32_t no_unknown = 0x100;
inline constexpr uint32_t no_data = 0x200;
inline constexpr uint32_t skip = 0x400;      // the MTA understands SMFIR_SKIP
inline constexpr uint32_t rcpt_rej = 0x800;  // also send rejected RCPTs (not offered)
inline constexpr uint32_t nr_connect = 0x1000;
inline constexpr uint32_t nr_helo = 0x2000;
inline constexpr uint32_t nr_mail = 0x4000;
inline constexpr uint32_t nr_rcpt = 0x8000;
inline constexpr uint32_t nr_data = 0x10000;
inline constexpr uint32_t nr_unknown = 0x20000;
inline constexpr uint32_t nr_eoh = 0x40000;
inline constexpr uint32_t nr_body = 0x80000;
}  // namespace flag

inline constexpr uint32_t protocol_version = 6;
// What tern offers: every action (the envelope changes are accepted and
// logged, see Modification), and every flag except RCPT_REJ and the
// leading-space and large-chunk options it does not implement.
inline constexpr uint32_t offered_actions = 0x1ff;
inline constexpr uint32_t offered_flags = 0x000fffff & ~flag::rcpt_rej;
// Body chunks sent to a milter are at most this long (libmilter's default
// buffer without the SMFIP_MDS_* options).
inline constexpr size_t max_body_chunk = 65535;
// A packet from a milter longer than this is garbage, not a reply.
inline constexpr size_t max_packet = 1024 * 1024;

struct Packet {
	char code = 0;
	std::string data;
};

// Length, command byte, data.
std::string encode_packet(char code, std::string_view data);

// Splits a byte stream into packets. Once failed, it stays failed.
class PacketReader {
public:
	void feed(std::string_view bytes) { buf_.append(bytes); }
	// The next complete packet, or nullopt (need more bytes, or failed()).
	std::optional<Packet> next();
	bool failed() const { return !error_.empty(); }
	const std::string& error() const { return error_; }
	size_t buffered() const { return buf_.size(); }

private:
	std::string buf_;
	std::string error_;
};

// The stages a milter may ask macros for (SMFIM_*), by their index in the
// negotiation reply.
enum class MacroStage : uint32_t { connect = 0, helo = 1, mail = 2, rcpt = 3, data = 4, eom = 5, eoh = 6 };

using Macros = std::vector<std::pair<std::string, std::string>>;

struct Negotiated {
	uint32_t version = 0;
	uint32_t actions = 0;
	uint32_t flags = 0;
	// Macro names the milter asked for per stage (SMFIF_SETSYMLIST), braces
	// removed; a stage not listed gets every macro tern has.
	std::map<uint32_t, std::vector<std::string>> macro_lists;
};

// OPTNEG: version, actions, flags.
std::string encode_optneg(uint32_t version = protocol_version, uint32_t actions = offered_actions,
                          uint32_t flags = offered_flags);
// The milter's answer to OPTNEG; nullopt with a reason when it is malformed
// or asks for actions or flags that were not offered.
std::optional<Negotiated> parse_optneg_reply(const Packet& p, std::string& error, uint32_t actions = offered_actions,
                                             uint32_t flags = offered_flags);

// How the client is connected, for SMFIC_CONNECT.
struct ConnectInfo {
	std::string hostname;  // the client's verified name, or "[ip]" (as sendmail)
	char family = '4';     // '4', '6', or 'L' for a unix socket
	uint16_t port = 0;
	std::string address;  // the IP address, or the socket path
};

// A change a milter asks for at the end of the message.
struct Modification {
	enum class Kind {
		add_header,
		insert_header,
		change_header,
		replace_body,
		quarantine,
		add_rcpt,
		del_rcpt,
		change_from
	};
	Kind kind;
	std::string name;    // header name; the address for recipient/sender changes
	std::string value;   // header value (LF between folded lines); body bytes; quarantine reason
	uint32_t index = 0;  // change_header: 1-based among fields of that name; insert_header: 0-based position
};

enum class Outcome : uint8_t {
	pending,     // a packet was consumed; more are needed
	negotiated,  // the OPTNEG answer was accepted
	next,        // the awaited command was answered "continue": send what is queued
	accept,      // accept: no more calls for this message (or connection)
	reject,      // reject (reply holds a custom 5xx, or is empty)
	tempfail,    // tempfail (reply holds a custom 4xx, or is empty)
	discard,     // accept the message and drop it
	failed,      // protocol error: apply the default action
};

struct Step {
	Outcome outcome = Outcome::pending;
	std::string reply;  // SMFIR_REPLYCODE text, "550 5.7.1 go away"
	std::string error;  // Outcome::failed: why
};

// One milter's conversation. Commands are queued, take_output() hands the
// bytes to write up to and including the first command that awaits a
// reply, and on_bytes() interprets what came back. Commands the milter
// asked not to receive are never queued; commands it asked not to answer
// are written without waiting.
class Conversation {
public:
	// Starts the conversation: OPTNEG is queued.
	Conversation();

	// Feeds bytes from the milter; returns the first outcome that is not
	// `pending`, or pending when every complete packet was consumed. Call
	// again with an empty view to take the next outcome of bytes already
	// buffered.
	Step on_bytes(std::string_view bytes);
	// Bytes to write now (possibly empty).
	std::string take_output();
	// Whether a reply is outstanding (the caller runs a timeout meanwhile).
	bool awaiting_reply() const { return awaiting_ != 0; }
	// Nothing queued, nothing awaited: the stage is over ("continue").
	bool idle() const { return awaiting_ == 0 && queue_.empty(); }
	bool negotiated() const { return negotiated_.has_value(); }
	const Negotiated& negotiation() const { return *negotiated_; }

	void queue_connect(const ConnectInfo& info, const Macros& macros);
	void queue_helo(std::string_view name, const Macros& macros);
	void queue_mail(const std::vector<std::string>& args, const Macros& macros);
	void queue_rcpt(const std::vector<std::string>& args, const Macros& macros);
	// DATA and every header, then end of headers.
	void queue_message_start(const std::vector<std::pair<std::string, std::string>>& headers, const Macros& macros);
	// One body chunk (≤ max_body_chunk). Returns false when the milter does
	// not want the body (nothing is queued).
	bool queue_body(std::string_view chunk);
	void queue_end_of_message(const Macros& macros);
	// Ends a message the milter saw the start of (MAIL) but not the end.
	void queue_abort();
	void queue_quit();

	// A new body (replace_body) larger than this is the milter's failure:
	// the message would exceed the listener's limit (Postfix's cleanup
	// refuses it too), and the chunks gather in memory.
	void limit_new_body(uint64_t bytes) { new_body_limit_ = bytes; }
	// The milter answered a body chunk with SKIP: send no more body.
	bool body_skipped() const { return body_skipped_; }
	// Whether MAIL was sent for a message that has not ended.
	bool in_message() const { return in_message_; }
	// Changes collected at the end of the message (after accept/continue).
	const std::vector<Modification>& modifications() const { return mods_; }
	std::vector<Modification> take_modifications() { return std::move(mods_); }

private:
	struct Queued {
		std::string bytes;
		char awaits = 0;  // the command answered, or 0 when no reply comes
	};
	void queue(char code, std::string data, bool reply_wanted, MacroStage stage, const Macros& macros);
	bool wants(uint32_t no_flag) const;
	bool replies(uint32_t nr_flag) const;
	Step verdict(const Packet& p);
	Step modification(const Packet& p);
	Step fail(std::string why);

	PacketReader reader_;
	std::deque<Queued> queue_;
	char awaiting_ = 0;  // the command whose reply we wait for
	std::optional<Negotiated> negotiated_;
	std::vector<Modification> mods_;
	bool body_skipped_ = false;
	uint64_t new_body_limit_ = UINT64_MAX;
	bool in_message_ = false;
	bool failed_ = false;
};

// The SMFIC_MACRO packet for `for_command`: only the `wanted` names when
// the milter asked for a list; "" when nothing is left to send.
std::string encode_macros(char for_command, const Macros& macros, const std::vector<std::string>* wanted);

// A milter's own SMTP reply (SMFIR_REPLYCODE), "550 5.7.1 text" or several
// lines "550-5.7.1 first\r\n550 5.7.1 last": the code and the enhanced
// code of the first line (last two parts, "7.1"; `default_secode` when it
// has none) and the texts of every line joined with LF, each byte that is
// not tab or printable US-ASCII replaced by '?'.
struct CustomReply {
	int code = 0;
	std::string secode;
	std::string text;
};
CustomReply parse_custom_reply(std::string_view reply, std::string_view default_secode);

}  // namespace tern::milter
