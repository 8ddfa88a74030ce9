// Fills an account's message history with synthetic records, for the
// benchmark's "durable delivery with a large history" run: as many senders,
// domains and networks as a busy mailbox has, a third of them marked by the
// user, spread over the last year.
//
// usage: tern-fill-history DATA_DIR ACCOUNT COUNT
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "store/db.h"
#include "store/history.h"

int main(int argc, char** argv) {
	if (argc != 4) {
		std::fprintf(stderr, "usage: tern-fill-history DATA_DIR ACCOUNT COUNT\n");
		return 2;
	}
	std::string data_dir = argv[1], account = argv[2];
	long count = std::atol(argv[3]);
	try {
		tern::store::Env env(data_dir);
		tern::store::MessageHistory history(env);
		std::mt19937 random(42);
		int64_t now = std::time(nullptr);
		const int batch = 50;  // one transaction's locks fit the lock table
		for (long done = 0; done < count; done += batch) {
			std::vector<tern::store::HistoryRecord> records;
			for (long i = done; i < done + batch && i < count; ++i) {
				tern::store::HistoryRecord r;
				r.account = account;
				// A folder the bench's Maildir does not have: the scanner
				// leaves these records alone (it would expunge records of
				// INBOX messages whose files are missing).
				r.mailbox = "Archive-bench";
				r.unique_name = "fill." + std::to_string(i) + ".bench,S=1000";
				r.received = now - static_cast<int64_t>(random() % (365 * 24 * 3600));
				std::string domain = "d" + std::to_string(random() % 5000) + ".example";
				r.remote_ip = "10." + std::to_string(random() % 256) + "." +
				    std::to_string(random() % 256) + "." + std::to_string(random() % 256);
				auto masks = tern::store::ip_masks(r.remote_ip);
				r.identity.ip1 = masks[0];
				r.identity.ip2 = masks[1];
				r.identity.ip3 = masks[2];
				r.identity.from_localpart = "u" + std::to_string(random() % 20);
				r.identity.from_domain = domain;
				r.identity.from_org_domain = domain;
				r.identity.from_validated = true;
				r.identity.dkim_domains = {domain};
				r.identity.mailfrom_localpart = r.identity.from_localpart;
				r.identity.mailfrom_domain = domain;
				r.identity.mailfrom_validated = true;
				r.identity.ehlo_domain = "mx." + domain;
				r.size = 1000;
				r.message_id = "<" + std::to_string(i) + "@" + domain + ">";
				switch (random() % 6) {
				case 0: r.junk = tern::inbound::JunkMark::junk; break;
				case 1: r.junk = tern::inbound::JunkMark::notjunk; break;
				default: break;
				}
				records.push_back(std::move(r));
			}
			history.add(records);
		}
		env.checkpoint(true);
		std::printf("%zu history records\n", history.count());
	} catch (const std::exception& e) {
		std::fprintf(stderr, "tern-fill-history: %s\n", e.what());
		return 1;
	}
	return 0;
}
