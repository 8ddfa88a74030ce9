// BDAT (RFC 3030 CHUNKING): the message arrives in chunks whose exact size is
// on the command line. The chunk octets are binary, read past the command
// parser into the same temp file and decoder as DATA (chunked framing: no
// dot-stuffing, no end marker), and the LAST chunk ends the message through
// the same end-of-data path as DATA (finish_data). A chunk that is refused is
// still read to its end and dropped before the reply, so the command stream
// stays in step with the client (RFC 3030 2, 4).
#include "server/session.h"
#include "server/server.h"
#include "smtp/replies.h"
#include "util/log.h"

namespace tern::server {

using smtp::SmtpError;
namespace se = smtp::se;
using smtp::replies::storage_failure;

// The refusals of DATA and BDAT at this point (RFC 5321 4.1.1.4, RFC 3207,
// RFC 6409 4.3); BDAT sends them only after the chunk is read.
smtp::Status Connection::data_commands_allowed() const {
	if (smtp::Status s = mail_commands_allowed(); !s) return s;
	if (!tx.has_mail) return smtp::replies::missing_mail();
	if (tx.recipients.empty()) return smtp::replies::missing_recipient();
	return {};
}

// RFC 3030 2
Outcome Connection::cmd_bdat(std::string_view args) {
	smtp::Result<smtp::BdatArgs> parsed = smtp::parse_bdat(args, parse_mode());
	// Without a valid size nobody knows where the chunk ends, so the stream
	// cannot be brought back in step: reply, then close.
	if (!parsed) return SmtpError(parsed.error()).then_close();
	const smtp::BdatArgs& b = *parsed;
	std::optional<SmtpError> refusal;
	if (smtp::Status s = data_commands_allowed(); !s) refusal = s.error();
	bool ends_transaction = false;
	if (!refusal && !data && srv.disk_space().low()) {
		// As DATA: below the disk reserve no new message is taken.
		refusal = smtp::replies::below_disk_reserve();
		ends_transaction = true;
	}
	if (!refusal && !data) {
		// The first chunk of the message.
		smtp::Result<std::unique_ptr<DataInProgress>> opened = open_data_file(smtp::Framing::chunked);
		if (opened) {
			data = std::move(*opened);
			data->chunked = true;
		} else {
			refusal = opened.error();
			ends_transaction = true;
		}
	}
	if (!data) {
		// Nothing to store: only the octets to read and drop.
		data = std::make_unique<DataInProgress>(listener().bare_newlines, smtp::Framing::chunked);
		data->chunked = true;
		data->started = ev_now(srv.loop());
	}
	int64_t max = listener().max_message_size;
	uint64_t received = data->decoder.size();
	uint64_t room = max > 0 && static_cast<uint64_t>(max) > received ? static_cast<uint64_t>(max) - received : 0;
	if (!refusal && b.size > room) {
		// Known too large before reading it: the message fails, the chunk
		// is still read (and dropped), the session goes on.
		log::event(log::Level::info, cid, "message too large", {{"max", std::to_string(max)}});
		refusal = smtp::replies::message_too_large(max);
		ends_transaction = true;
	}
	data->chunk.start(b.size, b.last);
	data->chunk_refusal = std::move(refusal);
	data->refusal_ends_transaction = ends_transaction;
	// BDAT 0: nothing to read, the reply comes at once. An empty LAST chunk
	// still ends the message: a CR the previous chunk ended with, and a
	// last line without CRLF, are settled as at the end of any last chunk.
	if (data->chunk.complete()) {
		if (!data->chunk_refusal && data->chunk.last()) store_chunk_octets({}, true);
		return chunk_outcome();
	}
	// The reply comes once the chunk is read (end_chunk).
	return Outcome::enter(SessionState::data);
}

void Connection::feed_chunk() {
	DataInProgress& d = *data;
	size_t n = d.chunk.take(inbuf.size());
	std::string_view octets(inbuf.data(), n);
	// Message data is logged only at tracedata.
	if (log::enabled(log::Level::tracedata)) log::event(log::Level::tracedata, cid, "RC: " + std::string(octets));
	if (!d.chunk_refusal) store_chunk_octets(octets, d.chunk.complete() && d.chunk.last());
	inbuf.erase(0, n);
	if (d.chunk.complete()) end_chunk();
}

// Octets of a chunk into the message file through the decoder; at the end
// of the last chunk the decoder settles what it held back (a CR that
// could have begun a CRLF) and a missing final CRLF.
void Connection::store_chunk_octets(std::string_view octets, bool last_of_message) {
	DataInProgress& d = *data;
	d.decoder.feed(octets, d.decoded);
	if (last_of_message) d.decoder.finish(d.decoded);
	int64_t max = listener().max_message_size;
	if (static_cast<int64_t>(d.decoder.size()) > max) {
		// Bare newlines stored as CRLF made it grow past the limit.
		log::event(log::Level::info, cid, "message too large", {{"max", std::to_string(max)}});
		d.chunk_refusal = smtp::replies::message_too_large(max);
		d.refusal_ends_transaction = true;
		d.decoded.clear();
	} else {
		write_decoded();
	}
}

Outcome Connection::chunk_outcome() {
	DataInProgress& d = *data;
	if (d.chunk_refusal) {
		// RFC 3030 4: the transaction has failed; BDATs the client already
		// pipelined behind it are read and refused the same way.
		SmtpError e = std::move(*d.chunk_refusal);
		bool ends_transaction = d.refusal_ends_transaction;
		abort_data_file();
		if (ends_transaction) rset();
		return Outcome(std::move(e)).then(SessionState::command);
	}
	if (!d.chunk.last())
		return Outcome::reply(250, se::other0, std::to_string(d.chunk.size()) + " octets received")
		    .then(SessionState::command);
	return finish_data();
}

// All octets of the chunk are read: the reply to its BDAT.
void Connection::end_chunk() {
	// A chunk in flight at shutdown was finished: apply() adds the 421.
	apply(chunk_outcome());
	if (state == SessionState::command) arm_deadline();
}

}  // namespace tern::server
