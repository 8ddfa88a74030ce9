// The milter protocol, version 6 (see protocol.h for the wire format).
#include "milter/protocol.h"

#include "message/header_parse.h"
#include "util/strings.h"

#include <algorithm>

namespace tern::milter {

namespace {

void put_u32(std::string& out, uint32_t v) {
	out.push_back(static_cast<char>((v >> 24) & 0xff));
	out.push_back(static_cast<char>((v >> 16) & 0xff));
	out.push_back(static_cast<char>((v >> 8) & 0xff));
	out.push_back(static_cast<char>(v & 0xff));
}

uint32_t get_u32(std::string_view s, size_t at) {
	auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(s[at + i])); };
	return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

void put_string(std::string& out, std::string_view s) {
	out.append(s);
	out.push_back('\0');
}

// The NUL-terminated strings of a packet's data; nullopt when the last one
// is not terminated or one holds no bytes where `nonempty` asks.
std::optional<std::vector<std::string>> split_strings(std::string_view data) {
	std::vector<std::string> out;
	while (!data.empty()) {
		size_t nul = data.find('\0');
		if (nul == std::string_view::npos) return std::nullopt;
		out.emplace_back(data.substr(0, nul));
		data.remove_prefix(nul + 1);
	}
	return out;
}

std::string strip_braces(std::string_view name) {
	if (name.size() >= 2 && name.front() == '{' && name.back() == '}')
		return std::string(name.substr(1, name.size() - 2));
	return std::string(name);
}

}  // namespace

std::string encode_packet(char code, std::string_view data) {
	std::string out;
	out.reserve(5 + data.size());
	put_u32(out, static_cast<uint32_t>(data.size() + 1));
	out.push_back(code);
	out.append(data);
	return out;
}

std::optional<Packet> PacketReader::next() {
	if (failed() || buf_.size() < 4) return std::nullopt;
	uint32_t len = get_u32(buf_, 0);
	if (len == 0) {
		error_ = "malformed packet: length 0";
		return std::nullopt;
	}
	if (len > max_packet) {
		error_ = "packet too long: " + std::to_string(len) + " bytes";
		return std::nullopt;
	}
	if (buf_.size() < 4 + static_cast<size_t>(len)) return std::nullopt;
	Packet p;
	p.code = buf_[4];
	p.data.assign(buf_, 5, len - 1);
	buf_.erase(0, 4 + static_cast<size_t>(len));
	return p;
}

std::string encode_optneg(uint32_t version, uint32_t actions, uint32_t flags) {
	std::string data;
	put_u32(data, version);
	put_u32(data, actions);
	put_u32(data, flags);
	return encode_packet(command::optneg, data);
}

std::optional<Negotiated> parse_optneg_reply(const Packet& p, std::string& error, uint32_t actions, uint32_t flags) {
	if (p.code != command::optneg) {
		error = std::string("expected the negotiation reply, got '") + p.code + "'";
		return std::nullopt;
	}
	if (p.data.size() < 12) {
		error = "negotiation reply too short";
		return std::nullopt;
	}
	Negotiated n;
	n.version = get_u32(p.data, 0);
	n.actions = get_u32(p.data, 4);
	n.flags = get_u32(p.data, 8);
	// Version 2 is the oldest libmilter still in use; a milter may not
	// claim a newer version than the MTA offered.
	if (n.version < 2 || n.version > protocol_version) {
		error = "unsupported milter protocol version " + std::to_string(n.version);
		return std::nullopt;
	}
	if ((n.actions & ~actions) != 0) {
		error = "milter asks for actions that were not offered";
		return std::nullopt;
	}
	if ((n.flags & ~flags) != 0) {
		error = "milter asks for protocol flags that were not offered";
		return std::nullopt;
	}
	// Macro lists: a 4-byte stage index, then a NUL-terminated list of names
	// separated by spaces, repeated.
	std::string_view rest = std::string_view(p.data).substr(12);
	while (!rest.empty()) {
		if (rest.size() < 5) {
			error = "malformed macro list in negotiation reply";
			return std::nullopt;
		}
		uint32_t stage = get_u32(rest, 0);
		rest.remove_prefix(4);
		size_t nul = rest.find('\0');
		if (nul == std::string_view::npos || stage > static_cast<uint32_t>(MacroStage::eoh)) {
			error = "malformed macro list in negotiation reply";
			return std::nullopt;
		}
		std::vector<std::string> names;
		std::string_view list = rest.substr(0, nul);
		while (!list.empty()) {
			size_t sp = list.find(' ');
			std::string_view name = list.substr(0, sp);
			if (!name.empty()) names.push_back(strip_braces(name));
			list.remove_prefix(sp == std::string_view::npos ? list.size() : sp + 1);
		}
		n.macro_lists[stage] = std::move(names);
		rest.remove_prefix(nul + 1);
	}
	return n;
}

std::string encode_macros(char for_command, const Macros& macros, const std::vector<std::string>* wanted) {
	std::string data(1, for_command);
	bool any = false;
	for (const auto& [name, value] : macros) {
		if (wanted && std::find(wanted->begin(), wanted->end(), strip_braces(name)) == wanted->end()) continue;
		put_string(data, name);
		put_string(data, value);
		any = true;
	}
	return any ? encode_packet(command::macro, data) : std::string();
}

CustomReply parse_custom_reply(std::string_view reply, std::string_view default_secode) {
	CustomReply r;
	r.secode = std::string(default_secode);
	bool first = true;
	while (!reply.empty()) {
		size_t nl = reply.find('\n');
		std::string_view line = reply.substr(0, nl);
		reply.remove_prefix(nl == std::string_view::npos ? reply.size() : nl + 1);
		if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
		auto digit = [](char c) { return c >= '0' && c <= '9'; };
		if (line.size() >= 3 && digit(line[0]) && digit(line[1]) && digit(line[2])) {
			if (first) r.code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
			line.remove_prefix(std::min<size_t>(line.size(), 4));
		}
		// RFC 3463: class.subject.detail, the class being the code's first digit.
		size_t sp = line.find(' ');
		std::string_view word = line.substr(0, sp);
		size_t dot2 = word.find('.', 2);
		bool enhanced = word.size() >= 5 && r.code > 0 && word[0] == static_cast<char>('0' + r.code / 100) &&
		    word[1] == '.' && dot2 != std::string_view::npos && dot2 > 2 && dot2 + 1 < word.size() &&
		    word.find_first_not_of("0123456789.") == std::string_view::npos;
		if (enhanced) {
			if (first) r.secode = std::string(word.substr(2));
			line.remove_prefix(sp == std::string_view::npos ? line.size() : sp + 1);
		}
		if (!first) r.text += "\n";
		// RFC 5321 4.2: reply text is tab and printable US-ASCII. Anything
		// else a milter sends (a bare CR, an escape, UTF-8) is passed on as
		// '?', so that its bytes cannot end or alter the reply the client
		// reads.
		for (char c : line) {
			const auto u = static_cast<unsigned char>(c);
			r.text += u == '\t' || (u < 0x80 && !is_ascii_control(u)) ? c : '?';
		}
		first = false;
	}
	return r;
}

Conversation::Conversation() { queue_.push_back({encode_optneg(), command::optneg}); }

bool Conversation::wants(uint32_t no_flag) const { return negotiated_ && !(negotiated_->flags & no_flag); }

bool Conversation::replies(uint32_t nr_flag) const { return !(negotiated_->flags & nr_flag); }

void Conversation::queue(char code, std::string data, bool reply_wanted, MacroStage stage, const Macros& macros) {
	const std::vector<std::string>* wanted = nullptr;
	if (negotiated_) {
		auto it = negotiated_->macro_lists.find(static_cast<uint32_t>(stage));
		if (it != negotiated_->macro_lists.end()) wanted = &it->second;
	}
	std::string bytes = macros.empty() ? std::string() : encode_macros(code, macros, wanted);
	bytes += encode_packet(code, data);
	queue_.push_back({std::move(bytes), reply_wanted ? code : '\0'});
}

void Conversation::queue_connect(const ConnectInfo& info, const Macros& macros) {
	if (!wants(flag::no_connect)) return;
	std::string data;
	put_string(data, info.hostname);
	data.push_back(info.family);
	data.push_back(static_cast<char>(info.port >> 8));
	data.push_back(static_cast<char>(info.port & 0xff));
	put_string(data, info.address);
	queue(command::connect, std::move(data), replies(flag::nr_connect), MacroStage::connect, macros);
}

void Conversation::queue_helo(std::string_view name, const Macros& macros) {
	if (!wants(flag::no_helo)) return;
	std::string data;
	put_string(data, name);
	queue(command::helo, std::move(data), replies(flag::nr_helo), MacroStage::helo, macros);
}

void Conversation::queue_mail(const std::vector<std::string>& args, const Macros& macros) {
	in_message_ = true;
	body_skipped_ = false;
	mods_.clear();
	if (!wants(flag::no_mail)) return;
	std::string data;
	for (const auto& a : args) put_string(data, a);
	queue(command::mail, std::move(data), replies(flag::nr_mail), MacroStage::mail, macros);
}

void Conversation::queue_rcpt(const std::vector<std::string>& args, const Macros& macros) {
	if (!wants(flag::no_rcpt)) return;
	std::string data;
	for (const auto& a : args) put_string(data, a);
	queue(command::rcpt, std::move(data), replies(flag::nr_rcpt), MacroStage::rcpt, macros);
}

void Conversation::queue_message_start(const std::vector<std::pair<std::string, std::string>>& headers,
                                       const Macros& macros) {
	// SMFIC_DATA exists from version 4 on.
	if (wants(flag::no_data) && negotiated_->version >= 4)
		queue(command::data, {}, replies(flag::nr_data), MacroStage::data, macros);
	if (wants(flag::no_headers)) {
		for (const auto& [name, value] : headers) {
			std::string data;
			put_string(data, name);
			put_string(data, value);
			queue(command::header, std::move(data), replies(flag::nr_header), MacroStage::data, {});
		}
	}
	if (wants(flag::no_eoh)) queue(command::eoh, {}, replies(flag::nr_eoh), MacroStage::eoh, {});
}

bool Conversation::queue_body(std::string_view chunk) {
	if (!wants(flag::no_body) || body_skipped_) return false;
	queue(command::body, std::string(chunk.substr(0, max_body_chunk)), replies(flag::nr_body), MacroStage::eom, {});
	return true;
}

void Conversation::queue_end_of_message(const Macros& macros) {
	if (!negotiated_) return;
	queue(command::body_eob, {}, true, MacroStage::eom, macros);
}

void Conversation::queue_abort() {
	if (!negotiated_ || !in_message_) return;
	in_message_ = false;
	queue_.push_back({encode_packet(command::abort, {}), '\0'});
}

void Conversation::queue_quit() {
	if (!negotiated_) return;
	queue_.push_back({encode_packet(command::quit, {}), '\0'});
}

std::string Conversation::take_output() {
	std::string out;
	if (failed_) return out;
	// Nothing goes out while a reply is outstanding: replies come in order.
	while (awaiting_ == 0 && !queue_.empty()) {
		out += queue_.front().bytes;
		awaiting_ = queue_.front().awaits;
		queue_.pop_front();
	}
	return out;
}

Step Conversation::fail(std::string why) {
	failed_ = true;
	queue_.clear();
	awaiting_ = 0;
	return Step{Outcome::failed, {}, std::move(why)};
}

Step Conversation::on_bytes(std::string_view bytes) {
	if (failed_) return Step{Outcome::failed, {}, "conversation already failed"};
	reader_.feed(bytes);
	while (auto p = reader_.next()) {
		if (awaiting_ == 0) return fail(std::string("unexpected packet '") + p->code + "' from milter");
		if (awaiting_ == command::optneg) {
			std::string error;
			negotiated_ = parse_optneg_reply(*p, error);
			if (!negotiated_) return fail(error);
			awaiting_ = 0;
			return Step{Outcome::negotiated, {}, {}};
		}
		Step s = verdict(*p);
		if (s.outcome != Outcome::pending) return s;
	}
	if (reader_.failed()) return fail(reader_.error());
	return Step{};
}

Step Conversation::verdict(const Packet& p) {
	char answered = awaiting_;
	bool end_of_message = answered == command::body_eob;
	auto finish = [&](Outcome o, std::string text = {}) {
		awaiting_ = 0;
		if (o != Outcome::next) {
			// A verdict ends the stage: what was queued behind it is moot.
			queue_.clear();
			if (end_of_message) in_message_ = false;
		}
		if (o != Outcome::next && !end_of_message) mods_.clear();
		return Step{o, std::move(text), {}};
	};
	switch (p.code) {
	case reply::continue_:
		if (end_of_message) {
			// The end of the message has no "next": continue means accept.
			in_message_ = false;
			awaiting_ = 0;
			return Step{Outcome::accept, {}, {}};
		}
		return finish(Outcome::next);
	case reply::accept: return finish(Outcome::accept);
	case reply::reject: return finish(Outcome::reject);
	case reply::tempfail: return finish(Outcome::tempfail);
	case reply::discard: return finish(Outcome::discard);
	case reply::skip:
		// Only a body chunk may be answered with SKIP (and only when offered).
		if (answered != command::body) return fail("skip outside the body");
		body_skipped_ = true;
		awaiting_ = 0;
		// The chunks already queued are dropped; the caller queues the end.
		queue_.clear();
		return Step{Outcome::next, {}, {}};
	case reply::replycode: {
		auto strings = split_strings(p.data);
		std::string text = strings && !strings->empty() ? (*strings)[0] : std::string();
		if (text.size() < 3 || (text[0] != '4' && text[0] != '5') || text[1] < '0' || text[1] > '9' ||
		    text[2] < '0' || text[2] > '9' || (text.size() > 3 && text[3] != ' ' && text[3] != '-'))
			return fail("malformed reply code from milter");
		return finish(text[0] == '5' ? Outcome::reject : Outcome::tempfail, text);
	}
	case reply::progress: return Step{Outcome::pending, {}, {}};
	default:
		if (!end_of_message) return fail(std::string("unexpected reply '") + p.code + "' from milter");
		return modification(p);
	}
}

Step Conversation::modification(const Packet& p) {
	const Negotiated& n = *negotiated_;
	auto allowed = [&](uint32_t a) { return (n.actions & a) != 0; };
	Modification m;
	switch (p.code) {
	case reply::add_header:
	case reply::change_header:
	case reply::insert_header: {
		bool indexed = p.code != reply::add_header;
		if (!allowed(p.code == reply::change_header ? action::change_headers : action::add_headers))
			return fail("milter changes headers without having negotiated it");
		if (indexed && p.data.size() < 4) return fail("malformed header change");
		auto strings = split_strings(std::string_view(p.data).substr(indexed ? 4 : 0));
		if (!strings || strings->size() != 2 || (*strings)[0].empty()) return fail("malformed header change");
		// A name with a colon or white space in it would write another
		// field than the one named (RFC 5322 3.6.8).
		if (!message::is_field_name((*strings)[0])) return fail("header change with an invalid field name");
		m.kind = p.code == reply::add_header ? Modification::Kind::add_header
		    : p.code == reply::insert_header ? Modification::Kind::insert_header
						     : Modification::Kind::change_header;
		if (indexed) m.index = get_u32(p.data, 0);
		m.name = (*strings)[0];
		m.value = (*strings)[1];
		break;
	}
	case reply::replace_body:
		if (!allowed(action::change_body)) return fail("milter replaces the body without having negotiated it");
		// Several chunks make up the new body: they are joined here.
		if (!mods_.empty() && mods_.back().kind == Modification::Kind::replace_body) {
			if (mods_.back().value.size() + p.data.size() > new_body_limit_)
				return fail("milter replaces the body with more than the message size limit");
			mods_.back().value += p.data;
			return Step{};
		}
		if (p.data.size() > new_body_limit_)
			return fail("milter replaces the body with more than the message size limit");
		m.kind = Modification::Kind::replace_body;
		m.value = p.data;
		break;
	case reply::quarantine: {
		if (!allowed(action::quarantine)) return fail("milter quarantines without having negotiated it");
		auto strings = split_strings(p.data);
		m.kind = Modification::Kind::quarantine;
		m.value = strings && !strings->empty() ? (*strings)[0] : std::string();
		break;
	}
	case reply::add_rcpt:
	case reply::add_rcpt_par:
	case reply::del_rcpt:
	case reply::change_from: {
		uint32_t needed = p.code == reply::add_rcpt ? action::add_rcpt
		    : p.code == reply::add_rcpt_par         ? action::add_rcpt_par
		    : p.code == reply::del_rcpt             ? action::del_rcpt
							    : action::change_from;
		if (!allowed(needed)) return fail("milter changes the envelope without having negotiated it");
		auto strings = split_strings(p.data);
		if (!strings || strings->empty()) return fail("malformed envelope change");
		m.kind = p.code == reply::del_rcpt ? Modification::Kind::del_rcpt
		    : p.code == reply::change_from ? Modification::Kind::change_from
						   : Modification::Kind::add_rcpt;
		m.name = (*strings)[0];
		break;
	}
	default: return fail(std::string("unexpected reply '") + p.code + "' from milter");
	}
	mods_.push_back(std::move(m));
	return Step{};
}

}  // namespace tern::milter
