// Fuzzes sendmail.tern -bs (message/sendmail_smtp.h): the SMTP session
// spoken on a pipe. Checks:
//  - what the session writes and hands over does not depend on how the
//    input is cut into reads (whole, in the lengths the input gives, a
//    byte at a time);
//  - every reply line is a three-digit code, a space or a dash, text, CRLF;
//  - a message handed over has recipients (at most max_recipients), is no
//    larger than the limit, has no bare LF and is empty or ends in CRLF.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_common.h"
#include "message/sendmail_smtp.h"

using namespace tern;
namespace sm = tern::message::sendmail;

namespace {

constexpr uint64_t max_size = 2000;

void check_replies(std::string_view replies) {
	while (!replies.empty()) {
		size_t end = replies.find("\r\n");
		FUZZ_CHECK(end != std::string_view::npos);
		std::string_view line = replies.substr(0, end);
		FUZZ_CHECK(line.size() >= 4);
		for (size_t i = 0; i < 3; i++) FUZZ_CHECK(line[i] >= '0' && line[i] <= '9');
		FUZZ_CHECK(line[3] == ' ' || line[3] == '-');
		replies.remove_prefix(end + 2);
	}
}

void check_transaction(const sm::Transaction& tx) {
	FUZZ_CHECK(!tx.recipients.empty() && tx.recipients.size() <= sm::max_recipients);
	FUZZ_CHECK(tx.message.size() <= max_size);
	FUZZ_CHECK(tx.message.empty() || tx.message.ends_with("\r\n"));
	for (size_t i = 0; i < tx.message.size(); i++)
		if (tx.message[i] == '\n') FUZZ_CHECK(i > 0 && tx.message[i - 1] == '\r');
}

// The session's whole output for `stream` read in pieces of the lengths in
// `splits` (cycled; empty: all at once); each hand-over is answered with
// alternately a 250 and a 550 and shows in the transcript.
std::string transcript(std::string_view stream, const std::vector<size_t>& splits) {
	sm::StdioSmtp smtp("mx.example.org", max_size);
	std::string out = smtp.greeting(), input;
	size_t pos = 0, split_index = 0;
	bool eof = stream.empty();
	int handed_over = 0;
	for (int steps = 0;; steps++) {
		FUZZ_CHECK(steps < 1000000);
		sm::StdioSmtp::Step step = smtp.next(input, eof);
		check_replies(step.reply);
		out += step.reply;
		if (step.submit) {
			check_transaction(*step.submit);
			out += "<" + step.submit->sender + ">";
			for (const auto& r : step.submit->recipients) out += "<" + r + ">";
			out += step.submit->message;
			sm::Status status = handed_over++ % 2 ? sm::Status{550, "5.7.1", "refused", ""}
							      : sm::Status{250, "2.0.0", "queued", ""};
			std::string reply = smtp.delivered(status);
			check_replies(reply);
			out += reply;
		}
		if (step.quit) return out;
		if (!step.more) continue;
		FUZZ_CHECK(!eof);  // at the end of input the session ends
		size_t n = splits.empty() ? stream.size() : splits[split_index++ % splits.size()];
		n = std::min(n, stream.size() - pos);
		input.append(stream.substr(pos, n));
		pos += n;
		eof = pos == stream.size();
	}
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
	if (size < 1) return 0;
	// Byte 0: how many read lengths follow (bytes 1..).
	size_t split_count = std::min<size_t>(data[0] % 8, size - 1);
	std::vector<size_t> splits;
	for (size_t i = 0; i < split_count; i++) splits.push_back(size_t(data[1 + i] % 23) + 1);
	std::string_view stream(reinterpret_cast<const char*>(data + 1 + split_count), size - 1 - split_count);

	std::string whole = transcript(stream, {});
	FUZZ_CHECK(transcript(stream, splits) == whole);
	FUZZ_CHECK(transcript(stream, {1}) == whole);
	return 0;
}
