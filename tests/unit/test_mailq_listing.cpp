// mailq's listing (queue::MailqListing): the layout of sendmail's mailq that
// monitoring scripts parse.
#include <cstdlib>
#include <ctime>
#include <string>

#include <doctest/doctest.h>
#include "queue/ctl.h"

using tern::queue::MailqListing;
using tern::store::QueueRecord;

namespace {

// Arrival times are local time: the test pins the zone and puts it back.
struct UtcZone {
	std::string before;
	bool had = false;
	UtcZone() {
		if (const char* tz = std::getenv("TZ")) {
			before = tz;
			had = true;
		}
		setenv("TZ", "UTC", 1);
		tzset();
	}
	~UtcZone() {
		if (had)
			setenv("TZ", before.c_str(), 1);
		else
			unsetenv("TZ");
		tzset();
	}
};

QueueRecord record(uint64_t id, const std::string& file, const std::string& from, const std::string& to,
                   const std::string& last_error = "") {
	QueueRecord r;
	r.id = id;
	r.message_file = file;
	r.from = from;
	r.to = to;
	r.last_error = last_error;
	r.size = 2100;
	r.queued = 1796583600;  // Sun Dec 6 19:00:00 UTC 2026
	return r;
}

}  // namespace

TEST_CASE("mailq listing: an empty queue says so, as sendmail's mailq does") {
	CHECK(MailqListing().finish() == "Mail queue is empty\n");
}

TEST_CASE("mailq listing: one message per run of records sharing file and sender, recipients under it") {
	UtcZone utc;
	MailqListing listing;
	// A message's queue files are links "<base>.<n>", one per recipient.
	listing.add(record(7, "1700000000-ab.0", "alice@example.com", "bob@example.org"));
	listing.add(record(8, "1700000000-ab.1", "alice@example.com", "carol@example.org"));
	listing.add(record(9, "1700000001-cd.0", "", "dave@example.net", "451 4.3.0 try again later"));
	listing.add(record(10, "1700000001-cd.1", "", "erin@example.net", "451 4.3.0 try again later"));
	listing.add(record(11, "1700000001-cd.2", "", "frank@example.net"));
	const std::string indent(41, ' ');
	const std::string reason = "(451 4.3.0 try again later)";
	CHECK(listing.finish() ==
	      "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
	      "7              2100 Sun Dec  6 19:00:00  alice@example.com\n" +
	          indent + "bob@example.org\n" + indent + "carol@example.org\n" +
	          "\n"
	          "9              2100 Sun Dec  6 19:00:00  MAILER-DAEMON\n" +
	          std::string(76 - (reason.size() - 2), ' ') + reason + "\n" + indent + "dave@example.net\n" + indent +
	          "erin@example.net\n" + std::string(76 - 18, ' ') + "(reason unavailable)\n" + indent +
	          "frank@example.net\n" +
	          "\n"
	          "-- 4 Kbytes in 2 Requests.\n");
}

TEST_CASE("mailq listing: one request is singular; a long reason starts at the margin") {
	UtcZone utc;
	MailqListing listing;
	const std::string long_error(100, 'x');
	listing.add(record(12345678901234ULL, "c", "a@example.com", "b@example.com", long_error));
	std::string text = listing.finish();
	INFO(text);
	CHECK(text.find("\n12345678901234    2100 Sun Dec  6 19:00:00  a@example.com\n(" + long_error + ")\n") !=
	      std::string::npos);
	CHECK(text.ends_with("\n\n-- 2 Kbytes in 1 Request.\n"));
}

TEST_CASE("mailq listing: a reply's control characters are escaped, not sent to the terminal") {
	MailqListing listing;
	listing.add(record(1, "d", "a@example.com", "b@example.com", "550 \x1b[31mred"));
	std::string text = listing.finish();
	CHECK(text.find('\x1b') == std::string::npos);
	CHECK(text.find("(550 \\x1b[31mred)") != std::string::npos);
}
