#include "smtp/lmtp_client_protocol.h"

#include "util/strings.h"

namespace tern::smtp {

namespace {

// RFC 5321 4.5.3.1.5 allows 512 octets per reply line; a server that sends
// far more without a line end is not speaking LMTP.
constexpr size_t max_reply_line = 4096;

LmtpRecipientResult local_failure(const std::string& reason) {
	return {LmtpRecipientResult::Status::temporary, 451, "4.3.0", reason, true};
}

}  // namespace

LmtpRecipientResult lmtp_result_of(const Reply& reply) {
	LmtpRecipientResult r;
	r.code = reply.code;
	int cls = reply.code / 100;
	r.status = cls == 2 ? LmtpRecipientResult::Status::delivered
	    : cls == 5      ? LmtpRecipientResult::Status::permanent
			    : LmtpRecipientResult::Status::temporary;
	if (cls != 2 && cls != 4 && cls != 5) {
		// 1xx/3xx where a final reply belongs: nothing is known, try again later.
		r.code = 451;
		r.enhanced = "4.3.0";
		r.text = "unexpected reply from LMTP server: " + reply.summary();
		r.local = true;
		return r;
	}
	r.enhanced = !reply.enhanced.empty() ? reply.enhanced : std::to_string(cls) + ".0.0";
	r.text = reply.text();
	return r;
}

LmtpClientProtocol::LmtpClientProtocol(LmtpTransaction tx) : tx_(std::move(tx)), results_(tx_.recipients.size()) {
	if (tx_.recipients.empty()) step_ = Step::done;
}

void LmtpClientProtocol::send(std::string line) {
	output_ += line;
	output_ += "\r\n";
}

void LmtpClientProtocol::receive(std::string_view bytes) {
	if (done()) return;
	input_.append(bytes);
	size_t start = 0;
	while (!done()) {
		size_t lf = input_.find('\n', start);
		if (lf == std::string::npos) break;
		std::string_view line(input_.data() + start, lf - start);
		start = lf + 1;
		if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
		if (step_ == Step::body) {
			// RFC 2033 4.2 / RFC 5321 4.5.3.2: nothing may come while we send
			// the message; a reply now is a server that gave up on us.
			connection_failed("LMTP server replied while the message was being sent");
			break;
		}
		if (!parser_.feed_line(line)) continue;
		if (!parser_.error().empty()) {
			connection_failed("malformed reply from LMTP server (" + parser_.error() + ")");
			break;
		}
		handle_reply(parser_.take());
	}
	input_.erase(0, start);
	if (!done() && input_.size() > max_reply_line) connection_failed("reply line from LMTP server too long");
}

// The greeting and the LHLO reply. A server that will not greet us or take
// LHLO is a setup or load problem, not the message's: the mail waits
// (temporary).
void LmtpClientProtocol::on_greeting_or_lhlo(const Reply& reply) {
	if (reply.code / 100 != 2) {
		LmtpRecipientResult r = lmtp_result_of(reply);
		r.status = LmtpRecipientResult::Status::temporary;
		r.local = true;
		if (r.code / 100 != 4) {
			r.code = 451;
			r.enhanced = "4.3.0";
		}
		r.text = "LMTP server refused " + std::string(step_ == Step::greeting ? "the session" : "LHLO") + ": " +
		    reply.summary();
		settle_pending(r);
		finish_with_quit();
		return;
	}
	if (step_ == Step::greeting) {
		// RFC 2033 4.1: LHLO instead of EHLO.
		step_ = Step::lhlo;
		send("LHLO " + tx_.lhlo_name);
		return;
	}
	for (size_t i = 1; i < reply.lines.size(); ++i) {
		std::string keyword = ascii_lower(reply.lines[i].substr(0, reply.lines[i].find(' ')));
		if (keyword == "8bitmime") offers_8bitmime_ = true;
		if (keyword == "smtputf8") offers_smtputf8_ = true;
	}
	if (tx_.smtputf8 && !offers_smtputf8_) {
		// RFC 6531 3.4: the message needs SMTPUTF8 and cannot be passed on without it.
		settle_pending({LmtpRecipientResult::Status::permanent, 553, "5.6.7",
		                "LMTP server does not offer SMTPUTF8, which the message requires"});
		finish_with_quit();
		return;
	}
	std::string mail = "MAIL FROM:<" + tx_.mail_from + ">";
	if (tx_.body_8bit && offers_8bitmime_) mail += " BODY=8BITMIME";
	if (tx_.smtputf8) mail += " SMTPUTF8";
	step_ = Step::mail;
	send(std::move(mail));
}

void LmtpClientProtocol::handle_reply(const Reply& reply) {
	switch (step_) {
	case Step::greeting:
	case Step::lhlo: on_greeting_or_lhlo(reply); return;
	case Step::mail:
		if (reply.code / 100 != 2) {
			// The reverse path applies to every recipient alike.
			settle_pending(lmtp_result_of(reply));
			finish_with_quit();
			return;
		}
		step_ = Step::rcpt;
		send_next_rcpt_or_data();
		return;
	case Step::rcpt: {
		size_t index = next_rcpt_ - 1;
		if (reply.code / 100 == 2)
			accepted_.push_back(index);
		else
			results_[index] = lmtp_result_of(reply);  // this recipient's own answer
		send_next_rcpt_or_data();
		return;
	}
	case Step::data:
		if (reply.code != 354) {
			LmtpRecipientResult r = lmtp_result_of(reply);
			if (r.status == LmtpRecipientResult::Status::delivered)
				r = local_failure("LMTP server answered DATA with " + reply.summary());
			settle_pending(r);
			finish_with_quit();
			return;
		}
		step_ = Step::body;
		return;
	case Step::data_end: {
		// RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
		size_t index = accepted_[next_data_reply_++];
		results_[index] = lmtp_result_of(reply);
		if (next_data_reply_ == accepted_.size()) finish_with_quit();
		return;
	}
	case Step::body:
	case Step::done: return;
	}
}

void LmtpClientProtocol::send_next_rcpt_or_data() {
	if (next_rcpt_ < tx_.recipients.size()) {
		send("RCPT TO:<" + tx_.recipients[next_rcpt_++] + ">");
		return;
	}
	if (accepted_.empty()) {
		finish_with_quit();  // every recipient has its refusal
		return;
	}
	step_ = Step::data;
	send("DATA");
}

void LmtpClientProtocol::body_chunk(std::string_view chunk) {
	if (step_ == Step::body) stuffer_.feed(chunk, output_);
}

void LmtpClientProtocol::body_end() {
	if (step_ != Step::body) return;
	stuffer_.finish(output_);
	step_ = Step::data_end;
}

void LmtpClientProtocol::settle_pending(const LmtpRecipientResult& result) {
	for (auto& r : results_)
		if (r.status == LmtpRecipientResult::Status::pending) r = result;
}

void LmtpClientProtocol::finish_with_quit() {
	send("QUIT");
	step_ = Step::done;
}

void LmtpClientProtocol::connection_failed(const std::string& reason) {
	if (done()) return;
	settle_pending(local_failure(reason));
	step_ = Step::done;
	output_.clear();  // nothing more goes to a server we gave up on
}

}  // namespace tern::smtp
