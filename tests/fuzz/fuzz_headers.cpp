// Fuzzes header-section splitting (message/header_parse.h) and the From
// parsing of the submission path (message/submission.h). Checks that the
// split keeps every byte (DKIM "simple" hashes the raw fields) and that
// the two parse_single_from overloads agree.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_common.h"
#include "message/header_parse.h"
#include "message/submission.h"

using namespace tern;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
	std::string_view message(reinterpret_cast<const char*>(data), size);

	std::string error;
	auto section = message::parse_header_section(message, &error);
	if (section) {
		FUZZ_CHECK(section->body_offset <= message.size());
		// The fields are the message's first bytes, unchanged and in order.
		size_t offset = 0;
		for (const auto& field : section->fields) {
			FUZZ_CHECK(message.substr(offset, field.raw.size()) == field.raw);
			offset += field.raw.size();
			FUZZ_CHECK(!field.name.empty());
			FUZZ_CHECK(field.lower_name.size() == field.name.size());
			(void)field.value();
			(void)field.unfolded_value();
		}
		FUZZ_CHECK(offset <= section->body_offset);
		if (!section->fields.empty()) {
			auto found = message::find_fields(*section, section->fields.front().name);
			FUZZ_CHECK(!found.empty());
		}
		(void)message::has_header(*section, "From");
		(void)message::header_value(*section, "Message-Id");

		message::FromResult from = message::parse_single_from(*section);
		message::FromResult from_message = message::parse_single_from(message);
		FUZZ_CHECK(from.ok == from_message.ok);
		if (from.ok) {
			FUZZ_CHECK(from.address.to_string() == from_message.address.to_string());
			FUZZ_CHECK(!from.address.localpart.empty() || !from.address.domain.empty());
		} else {
			FUZZ_CHECK(!from.error.empty());
		}
	} else {
		FUZZ_CHECK(!error.empty());
		message::FromResult from = message::parse_single_from(message);
		FUZZ_CHECK(!from.ok);
		FUZZ_CHECK(from.error.rfind("parsing message header: ", 0) == 0);
	}
	(void)message::unfold(message);
	return 0;
}
