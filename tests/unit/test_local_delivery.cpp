// Which LMTP copies of a port-25 message the queue retries
// (server::lmtp_copies_to_retry, doc/behaviour.md §9).
#include <doctest/doctest.h>

#include "server/local_delivery.h"

using tern::server::CopyOutcome;
using tern::server::lmtp_copies_to_retry;

namespace {

CopyOutcome landed() {
	CopyOutcome o;
	o.delivered = true;
	return o;
}

CopyOutcome lmtp_failed(bool permanent) {
	CopyOutcome o;
	o.lmtp = true;
	o.code = permanent ? 550 : 451;
	o.permanent = permanent;
	return o;
}

CopyOutcome disk_failed() {
	CopyOutcome o;
	o.storage_error = "write: No space left on device";
	return o;
}

}  // namespace

TEST_CASE("lmtp retries: a temporary LMTP failure beside a landed copy is retried, nothing else") {
	const std::vector<std::string> rcpts{"a@x.example", "b@x.example", "c@x.example", "d@x.example"};
	CHECK(lmtp_copies_to_retry({landed(), lmtp_failed(false), lmtp_failed(true), disk_failed()}, rcpts) ==
	      std::vector<size_t>{1});
	// No copy landed: the client gets the 4xx and tries again itself.
	CHECK(lmtp_copies_to_retry({lmtp_failed(false), lmtp_failed(false)}, rcpts).empty());
	CHECK(lmtp_copies_to_retry({disk_failed(), lmtp_failed(false)}, rcpts).empty());
	// A Rejects copy (no recipient) that landed does not make the reply 250.
	CHECK(lmtp_copies_to_retry({landed(), lmtp_failed(false)}, {"", "b@x.example"}).empty());
	CHECK(lmtp_copies_to_retry({lmtp_failed(false), landed(), lmtp_failed(false)}, rcpts) ==
	      std::vector<size_t>{0, 2});
}
