// Table "subjectpass.db": account → key.
#include "store/subject_pass.h"


#include "inbound/subjectpass.h"
#include "message/header_parse.h"
#include "message/mime.h"
#include "message/submission.h"
#include "store/files.h"
#include "store/table.h"
#include "util/log.h"
#include "util/random.h"
#include "util/strings.h"

namespace tern::store {

namespace {

constexpr const char* table_file = "subjectpass.db";
constexpr size_t key_size = 32;
// The header section is all this needs.
constexpr size_t header_read_limit = 1024 * 1024;

}  // namespace

std::string subject_pass_key(Env& env, const std::string& account) {
	std::string key;
	env.in_table(table_file, [&](TableTxn& t) {
		auto existing = t.get(account, true);
		if (existing && existing->size() == key_size) {
			key = *existing;
			return;
		}
		key = random_bytes(key_size);
		t.put(account, key);
	});
	return key;
}

inbound::SubjectPassFacts subject_pass_facts(Env* env, const config::Account& account, const ReadableFile& message_file,
                                             int64_t now) {
	inbound::SubjectPassFacts facts;
	if (account.subject_pass_period_s <= 0 || !env) return facts;
	std::string head;
	try {
		head = read_file_head(message_file, header_read_limit);
	} catch (const std::exception&) {
		return facts;
	}
	auto section = message::parse_header_section(head);
	if (!section) return facts;
	message::FromResult from = message::parse_first_from(*section);
	if (!from.ok) return facts;
	std::string sender = from.address.localpart + "@" + ascii_lower(from.address.domain.ascii);
	std::string key;
	try {
		key = subject_pass_key(*env, account.name);
	} catch (const std::exception& e) {
		log::error("reading the subject-pass key", {{"account", account.name}, {"error", e.what()}});
		return facts;
	}
	facts.configured = true;
	auto subjects = message::find_fields(*section, "Subject");
	if (!subjects.empty()) {
		std::string subject = message::decode_encoded_words(subjects.front()->unfolded_value());
		if (auto token = inbound::subjectpass_token_in(subject))
			facts.token_valid = inbound::subjectpass_token_valid(*token, key, sender, now,
			                                                     account.subject_pass_period_s);
	}
	facts.new_token = inbound::make_subjectpass_token(key, sender, now);
	return facts;
}

}  // namespace tern::store
