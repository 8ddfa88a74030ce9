// Collects a message's header section from its bytes, fed from its start
// in pieces of any size: up to and including the empty line that ends it
// (RFC 5322 2.1). Pure; used where a message is read back from its file
// (server/message_file.cpp) and by the session while DATA streams in, to
// learn the From domain before the whole message is there.
#pragma once
#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace tern::message {

class HeaderScan {
public:
	// A header section longer than max_bytes gives no answer (nullopt).
	explicit HeaderScan(size_t max_bytes = 1024 * 1024) : max_bytes_(max_bytes) {}

	// Takes the next bytes; true once the answer is known (more bytes are
	// then not needed). Copies little more than the header: the bytes are
	// taken a slice at a time.
	bool add(std::string_view chunk) {
		while (!chunk.empty() && !done_) {
			size_t take = std::min(chunk.size(), slice_bytes);
			add_slice(chunk.substr(0, take));
			chunk.remove_prefix(take);
		}
		return done_;
	}
	bool done() const { return done_; }
	// The answer; bytes that ended before the empty line are all header.
	std::optional<std::string> take() { return done_ ? std::move(result_) : std::optional(std::move(head_)); }

	static constexpr size_t slice_bytes = 16384;

private:
	void add_slice(std::string_view slice) {
		size_t old = head_.size();
		head_.append(slice);
		// A message that starts with the empty line has an empty header.
		if (head_.starts_with("\r\n")) return finish(std::string("\r\n"));
		size_t end = head_.find("\r\n\r\n", old >= 3 ? old - 3 : 0);
		if (end != std::string::npos) {
			head_.resize(end + 4);
			return finish(std::move(head_));
		}
		if (head_.size() > max_bytes_) return finish(std::nullopt);
	}
	void finish(std::optional<std::string> result) {
		result_ = std::move(result);
		done_ = true;
		std::string().swap(head_);
	}

	size_t max_bytes_;
	std::string head_;
	std::optional<std::string> result_;
	bool done_ = false;
};

}  // namespace tern::message
